package control

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/portmap"
)

// Server holds the active capture and serves the API.
type Server struct {
	backend     Backend
	stateDir    string
	logger      *slog.Logger
	env         Envelope
	maxDuration time.Duration

	limits apiLimits

	mu      sync.Mutex
	active  *saved
	program *flowprog.Program
	problem string
	tags    flowprog.TagTable // the ports' tags for good, as in tagsFile
	timer   *time.Timer       // fires at the active capture's deadline
	closed  bool              // Shutdown ran: the backend is released
	lastID  string            // the last capture id given (nextID)
}

// Config is what a Server is given beyond its backend.
type Config struct {
	// StateDir is where the capture, the port map and the tags are kept.
	StateDir string
	// Envelope is what the envelopes carry; PF0's MAC in it is the one a
	// PFMACSource reads, where the backend is one.
	Envelope Envelope
	// MaxDuration is the ceiling on a capture's length: a start asking
	// for more, or for no bound, is refused, and one asking for nothing
	// is bounded by it. Zero: no ceiling.
	MaxDuration time.Duration
	Logger      *slog.Logger
}

// NewServer returns a server over backend, keeping its state in
// cfg.StateDir. A capture saved there by an earlier run is stopped if its
// deadline has passed, before anything else, else applied again (bounded
// by the ceiling); if that fails, Status says why, and Stop clears it. The
// server owns backend from here: Shutdown, or a failed NewServer, releases
// it.
func NewServer(ctx context.Context, backend Backend, cfg Config) (*Server, error) {
	stateDir, env, logger := cfg.StateDir, cfg.Envelope, cfg.Logger
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		closeBackend(backend)
		return nil, fmt.Errorf("state directory: %w", err)
	}
	tags, err := loadTags(stateDir)
	if err != nil {
		closeBackend(backend)
		return nil, fmt.Errorf("the ports' tags: %w (removing the file makes tags be given again: do it only once no sink holds a port map of this host)", err)
	}
	if src, ok := backend.(PFMACSource); ok {
		env.PFMAC = src.PFMAC()
	}
	s := &Server{backend: backend, stateDir: stateDir, env: env, maxDuration: cfg.MaxDuration, logger: logger, limits: defaultLimits, tags: tags}
	sv, ok, err := loadSaved(stateDir)
	s.lastID = sv.ID
	stopAsked := false // a dataplane was asked to stop at start-up
	switch {
	case err != nil:
		s.problem = fmt.Sprintf("the saved capture cannot be read: %v", err)
	case ok:
		p, err := s.build(sv.Request)
		if err == nil {
			err = s.keepTags(p) // new to a capture saved before tags were kept
		}
		if err == nil && !sv.Deadline.IsZero() && !time.Now().Before(sv.Deadline) {
			// Down past the deadline: the capture ends, never applied
			// again. A dataplane's runs there still: its stop is asked.
			s.active, s.program, stopAsked = &sv, p, true
			if err := s.stopLocked(byDeadline); err != nil {
				logger.Error("the capture's deadline has passed but it could not be stopped", "by", byDeadline, "id", sv.ID, "err", err)
			}
			break
		}
		if err == nil && sv.StopRefused.IsZero() {
			s.boundLocked(&sv)
		}
		if d, isDP := backend.(Dataplane); isDP && err == nil {
			s.active, s.program = &sv, p
			if !sv.StopRefused.IsZero() {
				break // stopped once the dataplane captures nothing
			}
			// The dataplane may be down or not initialized yet: it
			// applies (or adopts) the capture once it is ready.
			d.Resume(p)
			break
		}
		if err == nil {
			err = reapply(ctx, backend, p)
		}
		if err != nil {
			s.problem = fmt.Sprintf("the capture saved at %s could not be applied again: %v", sv.Started.Format(time.RFC3339), err)
			logger.Error("capture not restored", "err", err)
		} else {
			s.active, s.program = &sv, p
			logger.Info("capture restored", "id", sv.ID, "ports", strings.Join(p.Config.Ports(), ","), "deadline", deadlineText(sv.Deadline))
			// The map on disk may be older than the table's tags.
			if err := s.writePortMap(p, sv.ID); err != nil {
				logger.Error("publishing the port map", "err", err)
			}
		}
	}
	if d, ok := backend.(Dataplane); ok {
		go d.Watch(ctx, s.republish)
		if s.active != nil && !s.active.StopRefused.IsZero() && !stopAsked {
			go s.retryStop()
		}
	}
	if s.active != nil && s.active.StopRefused.IsZero() {
		s.mu.Lock()
		s.armLocked(0)
		s.mu.Unlock()
	}
	return s, nil
}

// boundLocked bounds a saved capture by the ceiling from now on: one saved
// unbounded (or before deadlines were) or beyond a ceiling lowered since.
func (s *Server) boundLocked(sv *saved) {
	if s.maxDuration <= 0 {
		return
	}
	limit := time.Now().UTC().Add(s.maxDuration)
	if !sv.Deadline.IsZero() && !sv.Deadline.After(limit) {
		return
	}
	sv.Deadline = limit
	s.logger.Warn("the saved capture is bounded by --max-duration", "id", sv.ID, "deadline", limit.Format(time.RFC3339))
	if err := writeState(s.stateDir, sv); err != nil {
		s.logger.Error("saving the capture's deadline", "err", err)
	}
}

// retryStop asks the dataplane again to stop a capture whose stop it
// refused before this daemon restarted: the stop was asked for.
func (s *Server) retryStop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil || s.active.StopRefused.IsZero() {
		return
	}
	if err := s.stopLocked(cmp.Or(s.active.StoppedBy, byStop)); err != nil {
		s.logger.Warn("the capture's stop is refused still", "err", err)
	}
}

// reapply applies a capture that was running before: a saved one at start,
// or the one a failed replacement stopped. Apply is given checked
// programs only: the host may have changed since the capture was saved.
func reapply(ctx context.Context, b Backend, p *flowprog.Program) error {
	if r, ok := b.(Restorer); ok {
		return r.Restore(ctx, p)
	}
	if err := b.Check(ctx, p); err != nil {
		return err
	}
	return b.Apply(ctx, p)
}

// republish writes the port map again when the dataplane's interfaces
// changed under an active capture (a restart may move underlay routes),
// and ends a capture whose stop the dataplane refused once it captures
// nothing (it restarted).
func (s *Server) republish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return
	}
	if !s.active.StopRefused.IsZero() && s.dataplaneStopped() {
		id := s.active.ID
		if err := s.forgetLocked(); err != nil {
			s.logger.Error("removing the stopped capture's state", "err", err)
		}
		s.logger.Info("capture stopped: the dataplane captures nothing now", "id", id)
		return
	}
	if err := s.writePortMap(s.program, s.active.ID); err != nil {
		s.logger.Error("publishing the port map", "err", err)
	}
}

// portMap is what identifies the captured ports' copies: the program's
// tags, or what the dataplane knows; each port names the capture id.
func (s *Server) portMap(p *flowprog.Program, id string) portmap.Map {
	m := p.Tags
	if d, ok := s.backend.(Dataplane); ok {
		m = d.PortMap(p)
	}
	m.Ports = slices.Clone(m.Ports) // the program's own stay as built
	for i := range m.Ports {
		m.Ports[i].Capture = id
	}
	return m
}

func (s *Server) writePortMap(p *flowprog.Program, id string) error {
	m, err := json.MarshalIndent(s.portMap(p, id), "", "  ")
	if err != nil {
		return err
	}
	// Read back as sinks read it: a map they refuse is never published.
	if _, _, err := portmap.Parse(m); err != nil {
		return fmt.Errorf("the port map sinks would read is invalid: %w", err)
	}
	return writeAtomic(filepath.Join(s.stateDir, portMapFile), m, 0o644)
}

// build turns a request into the program this daemon would apply, with
// the ports' tags of its table. Called with s.mu held.
func (s *Server) build(r StartRequest) (*flowprog.Program, error) {
	return r.Program(s.env, s.tags)
}

// keepTags adds the tags build gave new ports to the table and persists
// it, before any envelope carries them: a tag a sink may have seen is
// never given to another port, even after a crash. Called with s.mu held.
func (s *Server) keepTags(p *flowprog.Program) error {
	next := maps.Clone(s.tags)
	for _, port := range p.Tags.Ports {
		next[port.Name] = port.Tag
	}
	if maps.Equal(next, s.tags) {
		return nil
	}
	b, err := json.MarshalIndent(savedTags{Tags: next}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(s.stateDir, tagsFile), b, 0o644); err != nil {
		return err
	}
	s.tags = next
	return nil
}

// apiLimits bound what a client holds: the time to send a request (headers,
// then all of it), an idle connection's life, the header size, and the
// connections served at once (the rest wait in the listen backlog), so that
// slow or stuck clients cannot exhaust the daemon's descriptors.
type apiLimits struct {
	header, read, write, idle time.Duration
	headerBytes, conns        int
}

var defaultLimits = apiLimits{
	header: 5 * time.Second, read: 10 * time.Second, write: time.Minute, idle: 5 * time.Second,
	headerBytes: 8 << 10, conns: 16,
}

// Serve answers the API on ln until ctx ends, then lets requests under way
// finish (for up to 5 seconds).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.limits.header,
		ReadTimeout:       s.limits.read,
		WriteTimeout:      s.limits.write,
		IdleTimeout:       s.limits.idle,
		MaxHeaderBytes:    s.limits.headerBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	defer stop()
	if err := hs.Serve(limit(ln, s.limits.conns)); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler returns the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, s.Status())
	})
	mux.HandleFunc("POST /v1/start", func(w http.ResponseWriter, r *http.Request) {
		s.logger.Info("start asked", "client", clientOf(r))
		var req StartRequest
		if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req); err != nil {
			reply(w, http.StatusBadRequest, errorBody{fmt.Sprintf("invalid request: %v", err)})
			return
		}
		st, code, err := s.Start(r.Context(), req)
		if err != nil {
			reply(w, code, errorBody{err.Error()})
			return
		}
		reply(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		l, ok := s.backend.(PortLister)
		if !ok {
			reply(w, http.StatusNotImplemented, errorBody{fmt.Sprintf("the %s backend cannot list its ports", s.backend.Name())})
			return
		}
		ports, err := l.Ports(r.Context())
		if err != nil {
			reply(w, http.StatusBadGateway, errorBody{err.Error()})
			return
		}
		reply(w, http.StatusOK, PortList{Backend: s.backend.Name(), Ports: ports})
	})
	mux.HandleFunc("POST /v1/stop", func(w http.ResponseWriter, r *http.Request) {
		s.logger.Info("stop asked", "client", clientOf(r))
		res, err := s.Stop()
		if err != nil {
			reply(w, http.StatusInternalServerError, errorBody{err.Error()})
			return
		}
		reply(w, http.StatusOK, res)
	})
	return mux
}

// maxBody bounds a request body; a start request is a few hundred bytes.
const maxBody = 1 << 16

// decodeStrict decodes exactly one JSON object into v: unknown fields (a
// newer client's option this daemon would silently ignore) and anything
// after the object are refused.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Start applies a capture, all or nothing, and saves it. It returns the
// HTTP status of a failure: 400 for a bad request (ports the backend does
// not serve included), 409 while active, 422 for a request the backend
// cannot apply now. With Replace, the active capture is stopped only after
// the new one passed every check; if the new one still fails to apply, the
// old one is applied again, and the error says whether that worked.
func (s *Server) Start(ctx context.Context, r StartRequest) (Status, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.build(r)
	if err != nil {
		return Status{}, http.StatusBadRequest, err
	}
	deadline, code, err := s.deadlineOf(r, time.Now())
	if err != nil {
		return Status{}, code, err
	}
	if s.active != nil && !r.Replace {
		return Status{}, http.StatusConflict, fmt.Errorf("capture is active on %s since %s: stop it first, or start with --replace",
			strings.Join(s.program.Config.Ports(), ", "), s.active.Started.Format(time.RFC3339))
	}
	if err := s.backend.Check(ctx, p); err != nil {
		code := http.StatusUnprocessableEntity
		if errors.Is(err, ErrUnknownPort) {
			code = http.StatusBadRequest
		}
		return Status{}, code, fmt.Errorf("%w; nothing was changed", err)
	}
	if err := s.keepTags(p); err != nil {
		return Status{}, http.StatusInternalServerError, fmt.Errorf("start capture: %w (nothing was changed)", err)
	}
	old, oldProgram := s.active, s.program
	if old != nil {
		if err := s.backend.Clear(); err != nil {
			return Status{}, http.StatusInternalServerError, s.restoreLocked(ctx, old, oldProgram, fmt.Errorf("stop the active capture: %w", err))
		}
	}
	if err := s.backend.Apply(ctx, p); err != nil {
		if old == nil && errors.Is(err, ErrNotUndone) {
			if _, isDP := s.backend.(Dataplane); !isDP {
				// A dataplane lists what it captures; a backend of ours
				// knows it only in what its Clear undoes.
				s.problem = fmt.Sprintf("a start that failed left ports captured (%v): dpcap stop stops them", err)
			}
			return Status{}, http.StatusInternalServerError, fmt.Errorf("start capture: %w", err)
		}
		if old == nil {
			return Status{}, http.StatusInternalServerError, fmt.Errorf("start capture: %w (nothing was changed)", err)
		}
		return Status{}, http.StatusInternalServerError, s.restoreLocked(ctx, old, oldProgram, err)
	}
	r.Replace = false
	now := time.Now().UTC()
	sv := &saved{Request: r, Started: now, ID: s.nextID(now), Deadline: deadline.UTC()}
	if err := s.save(sv, p); err != nil {
		_ = s.backend.Clear()
		if old == nil {
			return Status{}, http.StatusInternalServerError, fmt.Errorf("start capture: %w (capture was undone)", err)
		}
		return Status{}, http.StatusInternalServerError, s.restoreLocked(ctx, old, oldProgram, err)
	}
	s.active, s.program, s.problem = sv, p, ""
	s.armLocked(0)
	s.logger.Info("capture started", "id", sv.ID, "ports", strings.Join(p.Config.Ports(), ","), "sink", r.SinkNodeIP, "deadline", deadlineText(sv.Deadline))
	return s.statusLocked(), 0, nil
}

// restoreLocked applies the capture a failed replacement stopped, and
// returns the replacement's error saying whether the old capture runs
// again. If it does not, it was lost: status says so, its saved state stays
// (a restart tries it again) and dpcap stop clears it.
func (s *Server) restoreLocked(ctx context.Context, old *saved, p *flowprog.Program, cause error) error {
	ports := strings.Join(p.Config.Ports(), ", ")
	// The client may be gone by now; the old capture must come back anyway.
	err := reapply(context.WithoutCancel(ctx), s.backend, p)
	if err == nil {
		// A failed save may have published the new port map: put the old back.
		if serr := s.save(old, p); serr != nil {
			s.logger.Error("saving the restored capture", "err", serr)
		}
		s.logger.Warn("replacement failed; previous capture restored", "err", cause, "ports", ports)
		return fmt.Errorf("start capture: %w (the previous capture on %s was restored)", cause, ports)
	}
	_ = s.backend.Clear()
	s.active, s.program = nil, nil
	s.problem = fmt.Sprintf("the capture on %s (since %s) was stopped for a replacement that failed (%v), and could not be applied again: %v",
		ports, old.Started.Format(time.RFC3339), cause, err)
	s.logger.Error("replacement failed; previous capture lost", "err", cause, "restore_err", err, "ports", ports)
	return fmt.Errorf("start capture: %w; the previous capture on %s was LOST (applying it again failed: %v): no capture is active", cause, ports, err)
}

func (s *Server) save(sv *saved, p *flowprog.Program) error {
	// The port map first: a saved capture always has its map.
	if err := s.writePortMap(p, sv.ID); err != nil {
		return err
	}
	return writeState(s.stateDir, sv)
}

// writeState saves sv alone, its port map as published.
func writeState(dir string, sv *saved) error {
	b, err := json.MarshalIndent(sv, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, captureFile), b, 0o600)
}

// Stop stops capture on every port and forgets it. Stopping when nothing
// is active is not an error.
func (s *Server) Stop() (StopResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil && s.problem == "" && len(s.stuckLocked()) == 0 {
		return StopResult{Message: "capture is not active"}, nil
	}
	if err := s.stopLocked(byStop); err != nil {
		return StopResult{}, err
	}
	return StopResult{Stopped: true, Message: "capture stopped"}, nil
}

// clearLocked stops the backend's capture and removes the saved state.
// A backend that failed to stop may capture still: its capture, its port
// map (the copies may still come) and its state stay, so that a stop
// again (or, for a dataplane, its restart) ends it; a dataplane's are
// marked refused unless it says it captures nothing.
func (s *Server) clearLocked(by string) error {
	berr := s.backend.Clear()
	if _, isDP := s.backend.(Dataplane); berr != nil && s.active != nil && !isDP {
		return fmt.Errorf("stop capture: %w; the capture stays active: dpcap stop tries again", berr)
	}
	if berr != nil && s.active != nil && !s.dataplaneStopped() {
		sv := *s.active
		if sv.StopRefused.IsZero() {
			sv.StopRefused, sv.StoppedBy = time.Now().UTC(), by
		}
		// The map published at the start stays: at start-up, the
		// dataplane's interfaces it names are not known yet.
		if err := writeState(s.stateDir, &sv); err != nil {
			return fmt.Errorf("stop capture: %w (and saving that it goes on: %v)", berr, err)
		}
		s.active = &sv
		return fmt.Errorf("stop capture: %w; its port map stays published at %s while it goes on", berr, filepath.Join(s.stateDir, portMapFile))
	}
	ferr := s.forgetLocked()
	if err := errors.Join(berr, ferr); err != nil {
		return fmt.Errorf("stop capture: %w", err)
	}
	return nil
}

// forgetLocked removes the saved capture and its port map.
func (s *Server) forgetLocked() error {
	var ferr error
	for _, f := range []string{captureFile, portMapFile} {
		if err := os.Remove(filepath.Join(s.stateDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			ferr = errors.Join(ferr, err)
		}
	}
	s.active, s.program, s.problem = nil, nil, ""
	s.armLocked(0)
	return ferr
}

// dataplaneStopped tells whether the backend surely captures nothing: a
// backend that is no dataplane after its Clear, a dataplane by its answer.
func (s *Server) dataplaneStopped() bool {
	d, ok := s.backend.(Dataplane)
	if !ok {
		return true
	}
	r := d.Report()
	return len(r.Captured) == 0 && (r.State == "ready" || r.State == "not initialized")
}

// Status returns the capture's status.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusLocked()
}

func macString(m net.HardwareAddr) string {
	if m == nil {
		return ""
	}
	return m.String()
}

// stuckLocked lists the ports the dataplane captures although no capture
// is active here: dpcap asked it to stop, or it was started elsewhere.
func (s *Server) stuckLocked() []string {
	if d, ok := s.backend.(Dataplane); ok {
		return d.Report().Captured
	}
	return nil
}

func (s *Server) statusLocked() Status {
	st := Status{Backend: s.backend.Name(), Problem: s.problem, RouterMAC: macString(s.env.RouterMAC), PFMAC: macString(s.env.PFMAC)}
	if s.maxDuration > 0 {
		st.MaxDuration = s.maxDuration.String()
	}
	if s.env.Underlay.IsValid() {
		st.UnderlayIP = s.env.Underlay.String()
	}
	if d, ok := s.backend.(Dataplane); ok {
		r := d.Report()
		st.Dataplane = &r
	}
	if s.active == nil {
		return st
	}
	st.Active, st.Request, st.Started, st.StopRefused = true, s.active.Request, s.active.Started, s.active.StopRefused
	st.ID, st.Deadline = s.active.ID, s.active.Deadline
	if !st.Deadline.IsZero() {
		st.TimeLeft = max(time.Until(st.Deadline).Round(time.Second), 0).String()
	}
	// What runs is what the dataplane says runs.
	if st.Dataplane != nil && st.Dataplane.Differs != "" && st.StopRefused.IsZero() {
		st.Active = false
	}
	st.PortMap, st.PortMapFile = s.portMap(s.program, s.active.ID), filepath.Join(s.stateDir, portMapFile)
	counters := s.backend.Counters()
	for _, t := range st.PortMap.Ports {
		if t.Kind == portmap.KindVF && !slices.Contains(s.program.Config.VFs, t.Name) {
			continue // listed for naming PF0's copies only
		}
		p := counters[t.Name]
		p.Name, p.Tag = t.Name, t.Tag
		st.Ports = append(st.Ports, p)
	}
	return st
}

// Shutdown stops capture when the daemon exits, and releases the backend;
// the saved state stays, so the next start applies it again. A
// dataplane's capture is left running: it lives there, and the next dpcap
// serve adopts it.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer closeBackend(s.backend)
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if _, ok := s.backend.(Dataplane); ok {
		return
	}
	if err := s.backend.Clear(); err != nil {
		s.logger.Error("clearing capture at exit", "err", err)
	}
}

// closeBackend releases b, if it holds anything (Closer).
func closeBackend(b Backend) {
	if c, ok := b.(Closer); ok {
		_ = c.Close()
	}
}
