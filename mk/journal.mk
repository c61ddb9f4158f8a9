# The journal's compatibility rule (docs/journal.md): agent/compat_test.go
# builds the v0.1.0 agent from the repository's history with git and runs it
# on a journal this agent wrote. A CI clone needs that commit (no shallow
# clone, or fetch it: git fetch origin 7eee3fbba68378cab5a38a9be961a487dceca017).
DEB_PKGS += git
