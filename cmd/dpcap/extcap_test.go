package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink/live/client"
	"github.com/gopacket/gopacket/layers"
)

// liveSink is a TLS server answering /v1/stream with three frames and
// /v1/ports with two ports, and 401 without the token.
func liveSink(t *testing.T, token string) (url, ca string) {
	t.Helper()
	certs := testkit.NewCerts(t, "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	s := pcapout.NewStream(&body, pcapout.StreamOptions{Format: pcapout.FormatPcapng})
	if _, err := s.AddInterface(pcapout.Interface{Name: "vm-1"}, layers.LinkTypeEthernet, 262144); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.WritePacket(0, time.Unix(1700000000, int64(i)), make([]byte, 60), 60); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "no or unknown token", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v1/ports" {
			fmt.Fprint(w, `{"ports":[{"name":"vm-1","description":"VF 1 {of pf0}"},{"name":"vm-2"}]}`)
			return
		}
		w.Write(body.Bytes())
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, certs.CA
}

// TestExtcapProtocol asks as Wireshark asks: the interfaces (a sink
// the environment names lists its ports), the options, and the ports
// again on a reload with the options' values.
func TestExtcapProtocol(t *testing.T) {
	const token = "extcap-token-0123456789"
	url, ca := liveSink(t, token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	extcap := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		return stdout.String()
	}
	t.Setenv(client.EnvURL, "")
	if got := extcap("--extcap-interfaces", "--extcap-version=4.0"); got != "extcap {version=1.0}{help=https://github.com/dpcap/dpcap}\n"+
		"interface {value=dpcap-live}{display=dpcap live: a port of a remote sink (sinkd --live)}\n" {
		t.Errorf("interfaces without a sink:\n%s", got)
	}
	t.Setenv(client.EnvURL, url)
	t.Setenv(client.EnvTokenFile, tokenFile)
	t.Setenv(client.EnvCA, ca)
	got := extcap("--extcap-interfaces", "--extcap-version=4.0")
	for _, want := range []string{
		"interface {value=dpcap-live-vm-1}{display=dpcap live: vm-1 (VF 1  of pf0 )}\n",
		"interface {value=dpcap-live-vm-2}{display=dpcap live: vm-2}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("interfaces lack %q:\n%s", want, got)
		}
	}
	got = extcap("--extcap-config", "--extcap-interface", "dpcap-live")
	for _, want := range []string{
		"{call=--url}{display=Sink URL}{type=string}{required=true}{default=" + url + "}",
		"{call=--token-file}{display=Token file}{type=fileselect}{mustexist=true}{default=" + tokenFile + "}",
		"arg {number=4}{call=--port}{display=Port}{type=selector}{reload=true}",
		"value {arg=4}{value=vm-2}{display=vm-2}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, token) {
		t.Errorf("the token in the config:\n%s", got)
	}
	if got := extcap("--extcap-config", "--extcap-interface", "dpcap-live-vm-1"); strings.Contains(got, "--port") {
		t.Errorf("a port's interface offers a port:\n%s", got)
	}
	// A reload gets the options' values as arguments, and only the
	// port's values back.
	t.Setenv(client.EnvURL, "")
	t.Setenv(client.EnvTokenFile, "")
	t.Setenv(client.EnvCA, "")
	got = extcap("--extcap-config", "--extcap-interface", "dpcap-live", "--extcap-reload-option", "port",
		"--url", url, "--token-file", tokenFile, "--ca", ca)
	if want := "value {arg=4}{value=vm-1}{display=vm-1 (VF 1  of pf0 )}\nvalue {arg=4}{value=vm-2}{display=vm-2}\n"; got != want {
		t.Errorf("reload:\n%s\nwant\n%s", got, want)
	}
	if got := extcap("--extcap-dlts", "--extcap-interface", "dpcap-live-vm-1"); !strings.HasPrefix(got, "dlt {number=1}{name=EN10MB}") {
		t.Errorf("dlts: %q", got)
	}
}
