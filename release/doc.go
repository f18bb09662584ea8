// Package release holds the checks of the repository's release process;
// it has no code but its tests. A release tags every module of the
// repository together at one version, the one release/version names
// (release/tag, release/setversion).
//
// TestTag runs release/tag on copies of the repository: it tags every
// module, and only when each go.mod requires the repository's own modules
// at the version being released; otherwise it refuses and tags nothing.
//
// TestConsumer builds programs outside the repository that import the
// public modules (the root, pgstate, ofprovider, opstateprom) at that
// version, as a user would, with no replace directive: the modules are
// served by a module proxy (a file:// directory) made from the work tree,
// the third-party modules by the module cache and the usual proxy. It
// checks that they build and vet, and that a program that uses
// ofprovider or opstateprom alone does not depend on pgx. With -short it
// skips.
package release
