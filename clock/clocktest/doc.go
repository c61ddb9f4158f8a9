// Package clocktest is a clock.Clock that tests move by hand: time stands
// still until Advance, which fires every timer whose deadline it passes, in
// deadline order.
package clocktest
