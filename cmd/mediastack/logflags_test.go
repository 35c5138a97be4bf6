package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestLogFlags(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		wantErr       string
		wantDebug     bool
		wantJSON      bool
	}{
		{level: "info", format: "text"},
		{level: "debug", format: "json", wantDebug: true, wantJSON: true},
		{level: "WARN", format: "text"},
		{level: "verbose", format: "text", wantErr: `--log-level "verbose": want debug, info, warn or error`},
		{level: "info+2", format: "text", wantErr: `--log-level "info+2"`},
		{level: "info", format: "xml", wantErr: `--log-format "xml": want text or json`},
	} {
		var buf bytes.Buffer
		c := logConfig{level: tc.level, format: tc.format}
		log, err := c.logger(&buf)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: err %v; want %q", tc, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		log.Debug("d", "k", 1)
		log.Info("i", "call_id", "abc")
		out := buf.String()
		if got := strings.Contains(out, "\"d\"") || strings.Contains(out, "msg=d"); got != tc.wantDebug {
			t.Errorf("%+v: debug line present = %v; want %v (%q)", tc, got, tc.wantDebug, out)
		}
		if tc.wantJSON {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Errorf("json line %q: %v", line, err)
				}
			}
		}
	}
}

func TestServeLogFlagErrorsAreUsageErrors(t *testing.T) {
	code, _, stderr := runCapture("serve", "--link", "tap:ms0", "--addr", "198.51.100.2/24", "--log-format", "yaml")
	if code != 2 || !strings.Contains(stderr, `--log-format "yaml": want text or json`) {
		t.Errorf("exit %d, stderr %q; want exit 2 naming --log-format", code, stderr)
	}
}
