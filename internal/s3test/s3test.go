// Package s3test runs a real MinIO server for tests: on loopback, with its
// own data directory, stopped, killed and restarted at will. 'make
// test-deps' installs the pinned server (go install github.com/minio/minio).
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dpcap/dpcap/archive"
)

// The root credentials of every test server.
const (
	AccessKey = "dpcaptest"
	SecretKey = "dpcaptest-secret"
)

// Binary returns the minio server's path: on PATH, else where go install
// puts it.
func Binary() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gobin, _ := exec.Command("go", "env", "GOBIN").Output()
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	for _, dir := range []string{strings.TrimSpace(string(gobin)), filepath.Join(strings.TrimSpace(string(gopath)), "bin")} {
		if p := filepath.Join(dir, "minio"); dir != "bin" && fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("the minio server is missing; 'make test-deps' installs it")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Options configure a Server.
type Options struct {
	// Addr is where it listens; a free loopback port when empty.
	Addr string
	// Command wraps the server's command line (to run it in a network
	// namespace); exec.Command when nil. A command with SysProcAttr set
	// keeps it; otherwise the server dies with the thread that started it
	// (Pdeathsig), which suits callers whose threads never end.
	Command func(name string, args ...string) *exec.Cmd
	// Dial connects to the server (from inside a namespace); the default
	// dialer when nil.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Server is a running (or stopped) MinIO.
type Server struct {
	opts Options
	bin  string
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start starts a server with a fresh data directory; it is killed when
// the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server keeping its data in dir, for a TestMain; Close ends
// it.
func New(dir string, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if opts.Addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		opts.Addr = ln.Addr().String()
		ln.Close()
	}
	if opts.Command == nil {
		opts.Command = exec.Command
	}
	s := &Server{opts: opts, bin: bin, dir: dir}
	if s.log, err = os.Create(filepath.Join(dir, "minio.log")); err != nil {
		return nil, err
	}
	if err := s.Restart(); err != nil {
		s.log.Close()
		return nil, err
	}
	return s, nil
}

// Close kills the server.
func (s *Server) Close() {
	s.Kill()
	s.log.Close()
}

// Endpoint is the server's URL.
func (s *Server) Endpoint() string { return "http://" + s.opts.Addr }

// Env is the environment that gives a process the root credentials.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
}

// Restart starts the server on its data directory and waits until it
// answers.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("minio is running")
	}
	cmd := s.opts.Command(s.bin, "server", "--quiet", "--address", s.opts.Addr, filepath.Join(s.dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	// Its own group: Stop and Kill reach the server behind a wrapper.
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	hc := s.httpClient()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// Ready once an S3 request gets past initialisation: anonymous,
		// it is refused (403) rather than deferred (503).
		resp, err := hc.Get(s.Endpoint() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden {
				return nil
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(s.log.Name())
			s.cmd = nil
			return fmt.Errorf("minio exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio not ready on %s: %v", s.opts.Addr, err)
		}
	}
}

// Stop ends the server as an operator would (SIGTERM) and waits.
func (s *Server) Stop() { s.end(syscall.SIGTERM) }

// Kill ends the server at once (SIGKILL), mid-request if one is under way.
func (s *Server) Kill() { s.end(syscall.SIGKILL) }

func (s *Server) end(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

func (s *Server) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.opts.Dial != nil {
		tr.DialContext = s.opts.Dial
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Client returns a client with the root credentials.
func (s *Server) Client(t testing.TB) *s3.Client { return s.ClientAs(t, AccessKey, SecretKey) }

// ClientAs returns a client with the given credentials; the SDK tries
// each request once, leaving retries to the code under test.
func (s *Server) ClientAs(t testing.TB, key, secret string) *s3.Client {
	t.Helper()
	c, err := archive.NewClient(context.Background(), archive.ClientOptions{
		Endpoint: s.Endpoint(), PathStyle: true, Dial: s.opts.Dial, MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, c *s3.Client, name string) {
	t.Helper()
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}
