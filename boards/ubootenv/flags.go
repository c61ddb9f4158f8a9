package ubootenv

import "strings"

// FlagsVar is the variable in which U-Boot and libubootenv keep variable
// attributes: "name:tA,name2:tA" with a type letter (s d x b i m) and an
// access letter (a any, r read-only, o write-once, c change-default).
const FlagsVar = ".flags"

// Protected reports whether .flags makes the existing variable name
// unchangeable: access r (read-only) or o (write-once, already written).
// libubootenv's fw_setenv refuses to change such a variable; so does
// meterupd env set. A variable that does not exist yet may be set.
func Protected(env Env, name string) bool {
	if _, ok := env[name]; !ok {
		return false
	}
	for _, item := range strings.Split(env[FlagsVar], ",") {
		n, attrs, ok := strings.Cut(item, ":")
		if !ok || n != name {
			continue
		}
		if strings.ContainsAny(attrs, "ro") {
			return true
		}
	}
	return false
}
