# The head-end link (mqttlink): its tests run against Debian's mosquitto
# broker and drive the node with mosquitto_pub/mosquitto_sub.
DEB_PKGS += mosquitto mosquitto-clients

.PHONY: bench-delivery
# bench-delivery: a 1 MiB package to a sim node over a simulated 2.4 kbit/s
# radio (time scaled by BENCH_SCALE, default 200) that drops every ~200 KB,
# with two power cuts, over HTTP and over the MQTT block stream: package
# bytes delivered and protocol overhead, each over the package's size.
bench-delivery: deps
	BENCH_DELIVERY=1 $(GO) test -count=1 -timeout 30m -run '^TestBenchDelivery$$' -v ./cmd/meterupd/ | grep -E '^(delivery:|ok|FAIL|--- FAIL)|_test.go:'
