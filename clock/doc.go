// Package clock is the time the agent and the daemon take as an option
// (tailscale's tstime.Clock): the time of day for expiry checks, timers for
// deadlines and watchdog feeding. Logic never calls time.Now or
// time.After directly, so tests of timed behaviour advance a fake clock
// (clock/clocktest) by hand instead of sleeping.
package clock
