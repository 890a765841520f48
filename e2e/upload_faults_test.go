package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/dpcap/dpcap/internal/s3test"
)

// TestUploadCredentialsFixedWhileRunning: sinkd -Z nobody --upload starts
// with a shared credentials file holding a session token MinIO does not
// know (it answers InvalidTokenId). The refusals are counted and logged
// as credential failures; the operator fixes the file while sinkd runs,
// and the files that waited reach the bucket without a restart.
func TestUploadCredentialsFixedWhileRunning(t *testing.T) {
	z := newZUpload(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "credentials")
	writeCreds := func(token string) {
		t.Helper()
		s := "[default]\naws_access_key_id = " + s3test.AccessKey + "\naws_secret_access_key = " + s3test.SecretKey + "\n"
		if token != "" {
			s += "aws_session_token = " + token + "\n"
		}
		// Replaced as an editor or a rotation agent replaces it; sinkd
		// reads it as nobody.
		writeOwned(t, creds+".new", s, nobody)
		if err := os.Rename(creds+".new", creds); err != nil {
			t.Fatal(err)
		}
	}
	writeCreds("a-session-token-the-store-never-issued")
	for k, v := range map[string]string{"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": ""} {
		t.Setenv(k, v)
	}
	d := startSinkd(t, z.ns, z.args("cap.pcapng")...)
	for phase := 1; phase <= 2; phase++ {
		replay(t, z.ns, "[::1]:3010", vmTraffic)
		d.waitMetric(t, "sinkd_packets_written_total", float64(74*phase))
		d.cmd.Process.Signal(syscall.SIGHUP)
		d.waitMetric(t, "sinkd_upload_pending_files", float64(phase))
	}
	m := d.waitMetric(t, `sinkd_upload_failures_total{reason="credentials"}`, 3)
	if m[`sinkd_upload_failures_total{reason="store"}`] != 0 || m["sinkd_upload_files_total"] != 0 {
		t.Fatalf("want credential failures only, nothing uploaded: %v", m)
	}
	if log := d.stderr.String(); !strings.Contains(log, "refused the credentials") || !strings.Contains(log, "InvalidTokenId") {
		t.Fatalf("the refusal is not logged as one of the credentials:\n%s", log)
	}
	writeCreds("")
	d.waitMetric(t, "sinkd_upload_files_total", 2)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "uploads resumed") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	frames := vmFrames(t)
	equalFrames(t, z.storedFrames(t), slices.Concat(frames, frames))
}
