// Package pkgbuild is the host side of update packages: it builds a
// package from a JSON spec (computing deltas and digests), signs and
// re-signs manifests, opens a package without verifying it (for
// inspection), and repacks a package for one group of nodes (device type,
// installed version, hardware revision), keeping only the items that group
// needs and signing the result again.
//
// The formats are those of package manifest (docs/packages.md). This
// package runs on the head-end and on engineers' machines, never on a
// node: a node only ever verifies (manifest.OpenPackage). The lab
// head-end imports it to build per-group tailored packages; cmd/meterpkg
// is a thin command line over it.
//
// Every function that writes a file writes it through internal/atomicfile:
// a failed build, sign or repack leaves no output file behind.
package pkgbuild
