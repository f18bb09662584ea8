package serve_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/internal/serve"
)

// corsHeaders are the headers that grant a page access.
var corsHeaders = []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
	"Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Access-Control-Allow-Credentials"}

// TestNoCORS checks that without CORSOrigins a cross-site request, and
// its preflight, get no CORS header at all.
func TestNoCORS(t *testing.T) {
	f := start(t, serve.Options{})
	origin := map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "content-type, x-api-key"}
	for _, req := range []request{
		{method: "OPTIONS", path: "/ofrep/v1/evaluate/flags", header: origin},
		{method: "POST", path: "/ofrep/v1/evaluate/flags", body: "{}", header: origin},
		{method: "GET", path: "/v1/namespaces", header: origin},
	} {
		resp, _ := f.do(t, req)
		for _, h := range corsHeaders {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("%s %s from another origin without -cors: %s: %q; want none", req.method, req.path, h, v)
			}
		}
	}
}

// TestCORS checks that an allowed origin's preflight and requests get
// what a browser needs (the ETag readable), with tokens too (preflights
// carry none), and another origin's get nothing.
func TestCORS(t *testing.T) {
	f := start(t, serve.Options{CORSOrigins: []string{"https://app.example", "http://localhost:3000"}, Tokens: testTokens(t)})
	pre := func(origin string) request {
		return request{method: "OPTIONS", path: "/ofrep/v1/evaluate/flags", header: map[string]string{"Origin": origin,
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, if-none-match, authorization"}}
	}
	resp, _ := f.want(t, 204, pre("https://app.example"))
	for h, want := range map[string]string{
		"Access-Control-Allow-Origin":  "https://app.example",
		"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE",
		"Access-Control-Allow-Headers": "Authorization, X-API-Key, Content-Type, If-Match, If-None-Match, Last-Event-ID",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("preflight %s = %q; want %q", h, got, want)
		}
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("preflight allows credentials (cookies); want not")
	}
	if v := resp.Header.Values("Vary"); !strings.Contains(strings.Join(v, ","), "Origin") {
		t.Errorf("Vary = %q; want Origin", v)
	}
	resp, _ = f.want(t, 200, request{method: "POST", path: "/ofrep/v1/evaluate/flags", body: "{}",
		header: map[string]string{"Origin": "http://localhost:3000", "Authorization": "Bearer " + readSecret}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Errorf("CORS request headers %v; want the origin allowed and ETag exposed", resp.Header)
	}
	// A refusal is readable by the page too, so that it can tell 401.
	resp, _ = f.want(t, 401, request{method: "POST", path: "/ofrep/v1/evaluate/flags", body: "{}",
		header: map[string]string{"Origin": "https://app.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Error("401 to an allowed origin without Access-Control-Allow-Origin")
	}
	for _, origin := range []string{"https://evil.example", "https://app.example.evil", "null", "https://APP.example"} {
		resp, _ := f.do(t, pre(origin))
		for _, h := range corsHeaders {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("preflight from %s: %s: %q; want none", origin, h, v)
			}
		}
	}
}

// TestOptions checks that New refuses what it cannot honour.
func TestOptions(t *testing.T) {
	f := start(t, serve.Options{})
	for _, o := range []serve.Options{
		{CORSOrigins: []string{"*"}},
		{CORSOrigins: []string{"https://app.example/"}},
		{CORSOrigins: []string{"app.example"}},
		{CORSOrigins: []string{"ftp://app.example"}},
		{CORSOrigins: []string{"https://app.example/path"}},
		{MaxValueBytes: -1},
		{MaxConns: -1},
		{MaxStreams: -1},
		{Heartbeat: -1},
		{ReadTimeout: -1},
		{WriteTimeout: -1},
		{MaxStreams: 10, MaxConns: 5},
	} {
		if _, err := serve.New(f.store, o); !errors.Is(err, serve.ErrInvalidOption) {
			t.Errorf("New(%+v) error = %v; want ErrInvalidOption", o, err)
		}
	}
	if _, err := serve.New(nil, serve.Options{}); !errors.Is(err, serve.ErrInvalidOption) {
		t.Errorf("New(nil) error = %v; want ErrInvalidOption", err)
	}
}
