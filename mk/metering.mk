# metering: the audit trail, common data, the throttle and the metering
# benchmark (docs/metering.md). taskset (util-linux) pins the benchmark to
# one CPU.
DEB_PKGS += util-linux

.PHONY: bench-metering
# bench-metering runs the simulated metrology process alone, beside a
# throttled delta apply, beside an unthrottled one, and alone again, all on
# one CPU, and prints one line per phase.
bench-metering:
	@bash scripts/bench-metering.sh
