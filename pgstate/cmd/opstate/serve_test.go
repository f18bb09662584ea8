package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/cli/clitest"
	"github.com/jackc/pgx/v5"
)

// TestServe runs opstate serve on a PostgreSQL database, as a process of
// its own: a PUT is stored, and changes by another run of the command and
// by plain SQL reach an event stream and the OFREP evaluations; SIGTERM
// ends it with exit 0.
func TestServe(t *testing.T) {
	db := schemaURL(t)
	s := mustOpen(t, db)
	p := clitest.Start(t, clitest.Command("-db", db, "serve", "-addr", "127.0.0.1:0"))
	base := p.Serving(t)

	req, _ := http.NewRequest("PUT", base+"/v1/namespaces/flags/keys/dark_mode", strings.NewReader("true"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("PUT = %d; want 204", resp.StatusCode)
	}
	if v, _ := s.Get("flags", "dark_mode"); v != "true" {
		t.Fatalf("after PUT, a Store on the database reads %q; want true", v)
	}

	resp, err = http.Get(base + "/v1/namespaces/flags/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "data: ") || strings.HasPrefix(line, "event: ") {
				lines <- strings.TrimSuffix(line, "\n")
			}
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("event line %q; want %q", got, want)
			}
		case <-time.After(clitest.Wait):
			t.Fatalf("no event within %v; want %q", clitest.Wait, want)
		}
	}
	// The stream reports changes once its Watch has begun, which the
	// client cannot see: set a marker, again and again, until the stream
	// reports the value last set, which is also the marker's last event.
	deadline := time.Now().Add(clitest.Wait)
ready:
	for i := 0; ; i++ {
		mustSet(t, s, "flags", "marker", strconv.Itoa(i))
		want := fmt.Sprintf(`data: {"op":"set","namespace":"flags","key":"marker","value":"%d"}`, i)
		retry := time.After(300 * time.Millisecond)
		for {
			select {
			case got := <-lines:
				if got == want {
					break ready
				}
				if !strings.Contains(got, `"key":"marker"`) {
					t.Fatalf("event %q while starting; want only the marker's", got)
				}
				continue
			case <-retry:
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event stream reported no change")
		}
	}

	hows[0].mustRun(t, db, "set", "flags", "dark_mode", "false")
	expect(`data: {"op":"set","namespace":"flags","key":"dark_mode","value":"false"}`)
	evaluate := func() string {
		resp, err := http.Post(base+"/ofrep/v1/evaluate/flags/dark_mode", "application/json", strings.NewReader(`{"context":{"targetingKey":"u"}}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := evaluate(); !strings.Contains(got, `"value":false`) {
		t.Errorf("OFREP after opstate set: %s; want value false", got)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE operational_state SET value = '{"on":1}' WHERE namespace = 'flags' AND key = 'dark_mode'`); err != nil {
		t.Fatal(err)
	}
	expect(`data: {"op":"set","namespace":"flags","key":"dark_mode","value":"{\"on\":1}"}`)
	if got := evaluate(); !strings.Contains(got, `"value":{"on":1}`) {
		t.Errorf("OFREP after plain SQL: %s; want value {\"on\":1}", got)
	}

	p.Signal(t, syscall.SIGTERM)
	expect("event: end")
	expect(`data: {"reason":"server shutting down"}`)
	if code, stderr := p.Exit(t); code != 0 || stderr != "" {
		t.Errorf("after SIGTERM: exit %d, stderr %q; want 0, \"\"", code, stderr)
	}
}
