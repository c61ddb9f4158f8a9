// Package modemtest runs the simulated radio module of package modemsim
// for a test: Start and StartWith open it on a pseudo-terminal, fail the
// test on a command the module does not know or an expectation left
// unmet, and stop it when the test ends. See modemsim for what the module
// does and how a test scripts or disturbs it.
package modemtest
