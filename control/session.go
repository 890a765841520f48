package control

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dpcap/dpcap/flowprog"
)

// Who stopped a capture, as the log line "capture stopped" says (by=).
const (
	byStop     = "dpcap stop"
	byDeadline = "deadline"
)

// retryDeadline is how long after a stop at the deadline failed the
// daemon tries again (a backend of its own: a dataplane that refused is
// ended as after dpcap stop, once it captures nothing).
const retryDeadline = 10 * time.Second

// NewID returns a capture id: the start's UTC time to the millisecond,
// then 24 random bits (20261207-213045.123-3fa9c2). Ids sort by start
// time; the server makes each sort after the one before (nextID).
func NewID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return now.UTC().Format(idLayout) + "-" + hex.EncodeToString(b[:])
}

// IDTime returns the start time an id made by NewID carries, to the
// second; ok is false for another string.
func IDTime(id string) (t time.Time, ok bool) {
	if len(id) < len(idLayout) {
		return t, false
	}
	t, err := time.Parse(idLayout, id[:len(idLayout)])
	return t, err == nil
}

// idLayout is the time at the head of a capture id.
const idLayout = "20060102-150405.000"

// nextID returns an id for a capture started at now that sorts after
// every id this server gave: starts within a millisecond get the next one.
// Called with s.mu held.
func (s *Server) nextID(now time.Time) string {
	id := NewID(now)
	for id <= s.lastID {
		now = now.Add(time.Millisecond)
		id = NewID(now)
	}
	s.lastID = id
	return id
}

// deadlineOf says when a capture r asks for stops, by the daemon's
// ceiling: zero for never. A request for more than the ceiling, or for no
// bound under one, is refused with the HTTP status to answer.
func (s *Server) deadlineOf(r StartRequest, now time.Time) (time.Time, int, error) {
	ceil := s.maxDuration
	ceiling := func() string { return "dpcap serve's --max-duration is " + ceil.String() }
	var d time.Duration
	switch {
	case r.For != "" && !r.Until.IsZero():
		return time.Time{}, http.StatusBadRequest, fmt.Errorf("give --for or --until, not both")
	case r.For != "":
		var err error
		if d, err = time.ParseDuration(r.For); err != nil || d < 0 {
			return time.Time{}, http.StatusBadRequest, fmt.Errorf("invalid --for %q: want a duration like 90s, 2m or 1h", r.For)
		}
		if d == 0 && ceil > 0 {
			return time.Time{}, http.StatusUnprocessableEntity, fmt.Errorf("--for 0 (no bound) refused: %s; nothing was changed", ceiling())
		}
		if d == 0 {
			return time.Time{}, 0, nil
		}
	case !r.Until.IsZero():
		if d = r.Until.Sub(now); d <= 0 {
			return time.Time{}, http.StatusBadRequest, fmt.Errorf("--until %s has passed", r.Until.Format(time.RFC3339))
		}
	case ceil > 0:
		return now.Add(ceil), 0, nil
	default:
		return time.Time{}, 0, nil
	}
	if ceil > 0 && d > ceil {
		return time.Time{}, http.StatusUnprocessableEntity, fmt.Errorf("a capture of %s refused: %s; nothing was changed", d.Round(time.Second), ceiling())
	}
	return now.Add(d), 0, nil
}

// armLocked makes the daemon stop the active capture at its deadline, in
// d from now when d is set (a retry). Called with s.mu held.
func (s *Server) armLocked(d time.Duration) {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.active == nil || s.active.Deadline.IsZero() {
		return
	}
	if d == 0 {
		d = time.Until(s.active.Deadline)
	}
	s.timer = time.AfterFunc(d, s.expire)
}

// expire stops the active capture if its deadline has come: a timer of a
// capture stopped or replaced since finds nothing to do.
func (s *Server) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.active == nil || s.active.Deadline.IsZero() || time.Now().Before(s.active.Deadline) {
		return
	}
	if err := s.stopLocked(byDeadline); err != nil {
		s.logger.Error("the capture's deadline has passed but it could not be stopped", "by", byDeadline, "id", s.active.ID, "err", err)
		if _, isDP := s.backend.(Dataplane); !isDP {
			s.armLocked(retryDeadline)
		}
	}
}

// stopLocked stops the active capture (clearLocked) and says who did, in
// the one log line every stop writes. Called with s.mu held.
func (s *Server) stopLocked(by string) error {
	var id, ports string
	if s.active != nil {
		id, ports = s.active.ID, joinPorts(s.program)
	}
	if err := s.clearLocked(by); err != nil {
		return err
	}
	s.logger.Info("capture stopped", "by", by, "id", id, "ports", ports)
	return nil
}

// joinPorts lists a program's ports for a log line.
func joinPorts(p *flowprog.Program) string {
	if p == nil {
		return ""
	}
	return strings.Join(p.Config.Ports(), ",")
}

// deadlineText is a deadline for a log line.
func deadlineText(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Format(time.RFC3339)
}
