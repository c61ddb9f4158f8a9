// Package flashtest is the journal tests' name for the behavioural flash
// fake of boards/flashfake: the same type, modes and errors.
package flashtest

import "meterupd/boards/flashfake"

// Flash is flashfake.Flash.
type Flash = flashfake.Flash

// CutMode is flashfake.CutMode.
type CutMode = flashfake.CutMode

// BadMode is flashfake.BadMode.
type BadMode = flashfake.BadMode

// The cut modes and bad-block modes of flashfake.
const (
	CutBefore  = flashfake.CutBefore
	CutAfter   = flashfake.CutAfter
	CutTorn    = flashfake.CutTorn
	CutGarbage = flashfake.CutGarbage
	CutOOO     = flashfake.CutOOO

	BadProgram       = flashfake.BadProgram
	BadErase         = flashfake.BadErase
	BadSilentProgram = flashfake.BadSilentProgram
	BadSilentErase   = flashfake.BadSilentErase
)

// The errors of flashfake.
var (
	ErrPowerCut = flashfake.ErrPowerCut
	ErrIO       = flashfake.ErrIO
)

// New is flashfake.New.
func New(size, eraseSize, writeSize int64, seed uint64) *Flash {
	return flashfake.New(size, eraseSize, writeSize, seed)
}
