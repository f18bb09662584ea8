package main

import (
	"os"
	"testing"
)

// TestMain plays a child writer when the environment names one
// (childRoleEnv), as this program does when the staleness rows run it
// again; the test binary is then the child.
func TestMain(m *testing.M) {
	if code, ran := runChildRole(); ran {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
