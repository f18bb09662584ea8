package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDBEnv checks that OPSTATE_DB names the database when -db is not
// given, that -db wins over it, and that an empty OPSTATE_DB means the
// default ./opstate.db.
func TestDBEnv(t *testing.T) {
	fromEnv, fromFlag := dbPath(t), dbPath(t)
	work := t.TempDir()
	t.Chdir(work) // where ./opstate.db would be
	t.Setenv(DBEnv, fromEnv)
	for _, args := range [][]string{
		{"set", "ns", "k", "env"},
		{"-db", fromFlag, "set", "ns", "k", "flag"},
	} {
		if code, _, stderr := runCLI(t, "", args...); code != exitOK || stderr != "" {
			t.Fatalf("run(%q) with %s=%s = %d, stderr %q; want 0, \"\"", args, DBEnv, fromEnv, code, stderr)
		}
	}
	if got := mustRun(t, fromEnv, "get", "ns", "k"); got != "env\n" {
		t.Errorf("get from %s=%s printed %q; want %q", DBEnv, fromEnv, got, "env\n")
	}
	if got := mustRun(t, fromFlag, "get", "ns", "k"); got != "flag\n" {
		t.Errorf("get from -db %s printed %q; want %q", fromFlag, got, "flag\n")
	}
	assertNoFiles(t, work, []string{"set", "ns", "k", "env"})

	// A bad OPSTATE_DB is bad usage, named as coming from the environment.
	t.Setenv(DBEnv, ":memory:")
	code, stdout, stderr := runCLI(t, "", "get", "ns", "k")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, DBEnv+"=:memory:") {
		t.Errorf("run get with %s=:memory: = %d, %q, %q; want %d, \"\", a message naming %s=:memory:",
			DBEnv, code, stdout, stderr, exitUsage, DBEnv)
	}

	// An empty one is not set.
	t.Setenv(DBEnv, "")
	if code, _, stderr := runCLI(t, "", "set", "ns", "k", "default"); code != exitOK {
		t.Fatalf("run set with %s empty = %d (%s); want 0", DBEnv, code, stderr)
	}
	if names, want := dirNames(t, work), []string{filepath.Base(defaultDB)}; !reflect.DeepEqual(names, want) {
		t.Errorf("set with %s empty left %q in the working directory; want %q", DBEnv, names, want)
	}
}

// TestRedact checks that a URL's password, in its user information or in
// a password or sslpassword parameter, never reaches a message, and that
// what a reader needs to recognise the database stays.
func TestRedact(t *testing.T) {
	for _, tt := range []struct {
		db, want string
	}{
		{"/var/lib/app/state.db", "/var/lib/app/state.db"},
		{"postgres://app@db1/state", "postgres://app@db1/state"},
		{"postgres://app:s3cret@db1:5432/state?sslmode=require", "postgres://app:xxxxx@db1:5432/state?sslmode=require"},
		{"postgresql://app:s3cret@db1/state", "postgresql://app:xxxxx@db1/state"},
		{"postgres://app:s%40cret@db1/state", "postgres://app:xxxxx@db1/state"},
		{"postgres://app@db1/state?password=s3cret&sslmode=disable", "postgres://app@db1/state?password=xxxxx&sslmode=disable"},
		{"postgres://app@db1/state?pass%77ord=s3cret", "postgres://app@db1/state?password=xxxxx"},
		{"postgres://app@db1/state?sslpassword=s3cret", "postgres://app@db1/state?sslpassword=xxxxx"},
		{"postgres://app:s3cret@db1,db2/state", "postgres://app:xxxxx@db1,db2/state"},
		{"postgres://app:s3c@ret@db1/state", "postgres://app:xxxxx@db1/state"},
		{"postgres://app:s3cret@db1:port/state", "postgres://(a URL that does not parse)"},
		{"postgres://app:s3cret@db1/state%zz", "postgres://(a URL that does not parse)"},
	} {
		got := redact(tt.db)
		if got != tt.want {
			t.Errorf("redact(%q) = %q; want %q", tt.db, got, tt.want)
		}
		if strings.Contains(got, "s3c") {
			t.Errorf("redact(%q) = %q, which holds the password", tt.db, got)
		}
	}
}

// TestKeyValueDSN checks that a key=value connection string in -db or
// OPSTATE_DB is bad usage, rather than the name of a file that set would
// create, and that the message does not echo it, password and all.
func TestKeyValueDSN(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	for _, dsn := range []string{
		"host=db1 dbname=ops user=app password=s3cret",
		"password=s3cret host=db1",
		"dbname=ops",
		"  user=app password='s3 cret'",
	} {
		for _, viaEnv := range []bool{false, true} {
			args := []string{"-db", dsn, "set", "ns", "k", "v"}
			t.Setenv(DBEnv, "")
			if viaEnv {
				args = args[2:]
				t.Setenv(DBEnv, dsn)
			}
			code, stdout, stderr := runCLI(t, "", args...)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, "key=value connection string") {
				t.Errorf("run(%q) with %s=%q = %d, %q, stderr %q; want %d, \"\", a message naming a key=value connection string",
					args, DBEnv, os.Getenv(DBEnv), code, stdout, stderr, exitUsage)
			}
			if strings.Contains(stderr, "s3") {
				t.Errorf("run(%q) with %s=%q printed the password: %q", args, DBEnv, os.Getenv(DBEnv), stderr)
			}
			assertNoFiles(t, work, args)
		}
	}
	// A file name that only holds "=" is still a file.
	mustRun(t, "./a=b", "set", "ns", "k", "v")
	if names, want := dirNames(t, work), []string{"a=b"}; !reflect.DeepEqual(names, want) {
		t.Errorf("-db ./a=b made %q; want %q", names, want)
	}
}
