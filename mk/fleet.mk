# fleet: the fleet simulator (`headend simulate`, package headend/fleetsim)
# and its benchmark. Its test in make test runs on mosquitto (mk/headend.mk
# lists it); bench-fleet also reads the broker's counters with
# mosquitto_sub.
DEB_PKGS += mosquitto mosquitto-clients

.PHONY: bench-fleet
# bench-fleet: a campaign over FLEET_NODES (default 10000) simulated meters
# running the real node code, on mosquitto, with `headend serve --broker`;
# then a second fleet whose campaign must halt in its first wave. Prints
# one `fleet:` line each. Not part of make test: it takes minutes and most
# of the machine.
bench-fleet: deps
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/headend ./cmd/meterpkg
	@nice -n 10 bash scripts/bench-fleet.sh $(BIN)
