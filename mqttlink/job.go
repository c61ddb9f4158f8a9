package mqttlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"meterupd/agent"
	"meterupd/internal/atomicfile"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/shadow"
	"meterupd/store"
)

// onDesired handles one desired document: refused (107), ignored as a
// duplicate or stale (108) — unless it names the job still in progress,
// which is then resumed — or acted on: the gate is persisted first (the
// journal), then the job runs.
func (l *Link) onDesired(ctx context.Context, b []byte) {
	d, err := shadow.ParseDelta(b, l.cfg.MaxPackage)
	if err != nil {
		l.log.Warn("desired document refused", slog.Any("err", err))
		l.sendRefusal(ctx, "", shadow.ResultBadDocument, err.Error())
		return
	}
	l.mu.Lock()
	facts := l.facts
	l.mu.Unlock()
	gate := shadow.Gate{Epoch: facts.Epoch, Version: facts.Version}
	switch v := gate.Check(d); {
	case v == shadow.Duplicate && d.Desired.Job == facts.Job && l.running(facts.Job):
		// The retained copy again, at a reconnect, while its job runs:
		// nothing to do (restarting would throw away the blocks in
		// flight).
	case v == shadow.Duplicate && d.Desired.Job == facts.Job && !l.finished(ctx, facts.Job):
		// The document this node acted on, again after a restart: carry
		// on with its job where it is. Idempotent: every step below
		// finds its work done.
		l.start(ctx, d)
	case v != shadow.Act:
		reason := fmt.Sprintf("desired document epoch %d version %d ignored: %s (the node acted on epoch %d version %d)", d.Epoch, d.Version, v, facts.Epoch, facts.Version)
		l.log.Info("desired document ignored", slog.String("why", v.String()))
		l.sendRefusal(ctx, d.Desired.Job, shadow.ResultStaleDocument, reason)
	default:
		f := facts
		f.Epoch, f.Version, f.Job = d.Epoch, d.Version, d.Desired.Job
		if err := l.persist(ctx, f); err != nil {
			l.log.Error("gate not persisted; document not acted on", slog.Any("err", err))
			return
		}
		l.start(ctx, d)
	}
}

// running reports whether the link works on job now.
func (l *Link) running(job string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.job != nil && l.job.job == job
}

// finished reports whether the node holds job's final result, or the link
// refused it: a duplicate of its document is then only reported.
func (l *Link) finished(ctx context.Context, job string) bool {
	l.mu.Lock()
	over, running := l.over, l.job != nil && l.job.job == job
	l.mu.Unlock()
	if running {
		return false
	}
	if over != nil && over.job == job && final(over.state) {
		return true
	}
	st, err := l.current(ctx)
	return err == nil && st.Update == nil && st.Last != nil && st.Last.Job == job
}

// start runs the document's job, after stopping a job it replaces.
func (l *Link) start(ctx context.Context, d shadow.Delta) {
	des := d.Desired
	l.mu.Lock()
	cur := l.job
	l.mu.Unlock()
	if cur != nil && (cur.job != des.Job || des.Cancel) {
		l.stopJob()
	} else if cur != nil {
		// The same job, a newer document (say, another activation
		// time): restart it with the new document.
		l.stopJob()
	}
	jctx, cancel := context.WithCancel(ctx)
	r := &running{job: des.Job, doc: d, cancel: cancel, done: make(chan struct{})}
	l.mu.Lock()
	l.job = r
	l.mu.Unlock()
	go func() {
		defer close(r.done)
		defer cancel()
		l.runJob(jctx, d)
		l.mu.Lock()
		if l.job == r {
			l.job = nil
		}
		l.mu.Unlock()
		l.poke()
	}()
}

// stopJob cancels the job in progress and waits for it.
func (l *Link) stopJob() {
	l.mu.Lock()
	r := l.job
	l.job = nil
	l.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

func (l *Link) setOver(o *override) {
	l.mu.Lock()
	l.over = o
	l.mu.Unlock()
	l.poke()
}

// runJob does what the desired document asks.
func (l *Link) runJob(ctx context.Context, d shadow.Delta) {
	des := d.Desired
	log := l.log.With(slog.String("job", des.Job))
	switch {
	case des.Cancel:
		l.cancelJob(ctx, des.Job)
		return
	case des.Package == nil && len(des.Manifest) > 0:
		l.requestFlow(ctx, des)
		return
	case des.Package == nil:
		return // nothing is wanted
	}
	st, err := l.current(ctx)
	if err != nil {
		return
	}
	if !nodeKnows(&st, des.Job) {
		pkg, err := l.fetch(ctx, des)
		if err != nil {
			if ctx.Err() == nil {
				code, reason := resultOf(err)
				log.Warn("package not fetched", slog.Any("err", err))
				l.setOver(&override{job: des.Job, state: agent.StateFailed, result: int(code), reason: reason})
			}
			return
		}
		mode, at, _ := des.Activation()
		req := localapi.Request{Cmd: "install", Paths: []string{pkg}, Job: des.Job, NoActivate: mode == shadow.ActivateCommand, Force: des.Force}
		if mode == "at" {
			// The agent keeps the schedule (persisted, reported as
			// scheduled, subject to the clock's validity and vetoes).
			req.ActivateAt = at.Format(time.RFC3339)
		}
		_, err = l.cfg.Node.Handle(ctx, req, nil)
		if err != nil && ctx.Err() == nil {
			code, reason := resultOf(err)
			log.Warn("install refused", slog.Any("err", err))
			l.setOver(&override{job: des.Job, state: agent.StateFailed, result: int(code), reason: reason})
			return
		}
		os.RemoveAll(l.fetchDir(des.Job))
		l.setOver(nil)
	}
	l.activation(ctx, d)
}

// activation waits for the scheduled time of an installed set and
// activates it; "now" was done by the install, "command" waits for the
// technician or a later document.
func (l *Link) activation(ctx context.Context, d shadow.Delta) {
	des := d.Desired
	mode, at, _ := des.Activation()
	// Ask the node, not the last event: the install may have activated
	// already while its events are still on their way to followNode (a
	// fleet of 10,000 simulated nodes saw 11 activate commands refused
	// so: "nothing to activate").
	st, err := l.currentFrom(ctx, nil)
	if err != nil || st.Job != des.Job || st.Update == nil || st.Update.Phase != agent.Installed {
		return
	}
	req := localapi.Request{Cmd: "activate", Force: des.Force}
	switch mode {
	case shadow.ActivateCommand:
		return
	case shadow.ActivateNow:
	default:
		// A newer document moved the time: the agent keeps it.
		req = localapi.Request{Cmd: "schedule", ActivateAt: at.Format(time.RFC3339)}
	}
	if _, err := l.cfg.Node.Handle(ctx, req, nil); err != nil && ctx.Err() == nil {
		l.log.Warn("activation refused", slog.String("job", des.Job), slog.Any("err", err))
	}
}

// cancelJob abandons a job not yet activated: the fetch stops and its
// files go; an update the node holds and has not activated is rolled back
// (cancelled). An activated one is not touched: a rollback is a
// technician's or an operator's explicit decision.
func (l *Link) cancelJob(ctx context.Context, job string) {
	os.RemoveAll(l.fetchDir(job))
	st, err := l.current(ctx)
	if err != nil {
		return
	}
	if st.Job == job && st.Update != nil {
		switch st.Update.Phase {
		case agent.Downloaded, agent.Installing, agent.Installed:
			if _, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "rollback", Reason: "cancelled by the head-end"}, nil); err != nil {
				l.log.Warn("cancel refused", slog.String("job", job), slog.Any("err", err))
			}
		default:
			l.sendRefusal(ctx, job, shadow.ResultBusy, "the update is activated already; cancel does not roll it back")
			return
		}
	}
	l.setOver(&override{job: job, state: agent.StateIdle, result: int(shadow.ResultCancelled), reason: "cancelled by the head-end"})
}

// RequestDoc is what the node publishes on state/<id>/request.
type RequestDoc struct {
	Job     string           `json:"job"`
	Request manifest.Request `json:"request"`
}

// requestFlow: the head-end sent a signed manifest alone; the node answers
// with its update request (seed 001), and the head-end with a package
// tailored to it.
func (l *Link) requestFlow(ctx context.Context, des shadow.Desired) {
	v, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "request", Manifest: des.Manifest}, nil)
	if err != nil {
		code, reason := resultOf(err)
		l.setOver(&override{job: des.Job, state: agent.StateFailed, result: int(code), reason: reason})
		return
	}
	req, ok := v.(manifest.Request)
	if !ok {
		l.log.Error("the node answered request with an unexpected type")
		return
	}
	b, err := json.Marshal(RequestDoc{Job: des.Job, Request: req})
	if err != nil {
		return
	}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if err := l.publish(ctx, l.topics.Request, b); err == nil {
			return
		}
		if l.sleep(ctx, l.backoff(attempt)) != nil {
			return
		}
	}
}

func (l *Link) fetchDir(job string) string {
	return filepath.Join(l.cfg.StoreDir, "dl", sanitize(job))
}

// fetch brings the package into the store (resuming what an earlier
// attempt or boot left), retrying transient failures with backoff, and
// writes the package of this node's payloads; it returns its path.
func (l *Link) fetch(ctx context.Context, des shadow.Desired) (string, error) {
	var remote store.Remote
	if des.Package.URL != "" {
		remote = &store.HTTP{URL: des.Package.URL}
	} else {
		l.stream.Stream = des.Package.Stream
		remote = l.stream
	}
	dir := l.fetchDir(des.Job)
	var needs []string
	opt := store.Options{
		Dir:      dir,
		Size:     des.Package.Size,
		MaxBytes: l.cfg.MaxPackage,
		Logger:   l.log,
		Verify: func(env []byte) (*manifest.Manifest, error) {
			v, err := l.cfg.Node.Handle(ctx, localapi.Request{Cmd: "needs", Manifest: env}, nil)
			if err != nil {
				return nil, err
			}
			names, ok := v.([]string)
			if !ok {
				return nil, fmt.Errorf("mqttlink: the node answered needs with %T", v)
			}
			needs = names
			// The node verified the signature: decode what it checked.
			payload, _, err := manifest.PayloadUnverified(env)
			if err != nil {
				return nil, err
			}
			return manifest.Decode(payload)
		},
		Select:  func(*manifest.Manifest) ([]string, error) { return needs, nil },
		OnBytes: l.cfg.OnPackageBytes,
		Progress: func(done, total int64) {
			l.setOver(&override{job: des.Job, state: "downloading", progress: &agent.Progress{Done: done, Total: total}})
		},
	}
	l.setOver(&override{job: des.Job, state: "downloading", progress: &agent.Progress{Total: des.Package.Size}})
	for attempt := 0; ; attempt++ {
		res, err := store.Fetch(ctx, remote, opt)
		if err == nil {
			l.setOver(&override{job: des.Job, state: agent.StateDownloaded, progress: &agent.Progress{Done: des.Package.Size, Total: des.Package.Size}})
			return l.assemble(dir, res)
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if !transient(err) {
			return "", err
		}
		l.log.Info("fetch interrupted; resuming later", slog.String("job", des.Job), slog.Any("err", err))
		l.mu.Lock()
		o := l.over
		l.mu.Unlock()
		if o != nil {
			oo := *o
			oo.result, oo.reason = int(shadow.ResultConnectionLost), "the download broke off; it resumes: "+err.Error()
			l.setOver(&oo)
		}
		if l.sleep(ctx, l.backoff(attempt)) != nil {
			return "", ctx.Err()
		}
	}
}

// assemble writes the package of the fetched payloads (under the signed
// manifest as received; the payloads this node does not need are left
// out) for the node's install, and removes the payload files.
func (l *Link) assemble(dir string, res *store.Result) (string, error) {
	path := filepath.Join(dir, "package.pkg")
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		pw, err := manifest.NewWriter(w, res.Envelope, false)
		if err != nil {
			return err
		}
		for _, it := range res.Manifest.Items {
			p, ok := res.Payloads[it.Payload]
			if !ok {
				if err := pw.Skip(); err != nil {
					return err
				}
				continue
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			err = pw.WritePayload(f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return pw.Close()
	})
	if err != nil {
		return "", fmt.Errorf("mqttlink: write the package: %w", err)
	}
	for _, p := range res.Payloads {
		os.Remove(p)
	}
	return path, nil
}

// transient reports whether a fetch failure may pass: the link, the
// broker, a server's temporary trouble. A refused package, a server that
// ignores Range, a package with no room: not.
func transient(err error) bool {
	var he *store.HTTPError
	if errors.As(err, &he) {
		return he.Temporary()
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrStreamTimeout), errors.Is(err, errNotConnected):
		return true
	}
	var op *net.OpError
	return errors.As(err, &op)
}

// resultOf maps an error to the reported result code and a sentence.
func resultOf(err error) (shadow.Result, string) {
	code := shadow.ResultUpdateFailed
	var pe *agent.PackageError
	switch {
	case errors.Is(err, store.ErrNoRoom):
		code = shadow.ResultNoStorage
	case errors.Is(err, manifest.ErrBadSignature), errors.Is(err, manifest.ErrUnknownKey), errors.Is(err, manifest.ErrAlgorithm),
		errors.Is(err, manifest.ErrMalformedSignature), errors.Is(err, manifest.ErrHeader), errors.Is(err, manifest.ErrUnsigned),
		errors.Is(err, agent.ErrNoKeys):
		code = shadow.ResultSignature
	case errors.Is(err, manifest.ErrReplay), errors.Is(err, manifest.ErrRollback):
		code = shadow.ResultReplay
	case errors.Is(err, manifest.ErrDowngrade):
		code = shadow.ResultDowngrade
	case errors.Is(err, manifest.ErrNotForDevice), errors.Is(err, manifest.ErrGap), errors.Is(err, manifest.ErrPrerequisite):
		code = shadow.ResultNotApplicable
	case errors.As(err, &pe) && len(pe.Checks) > 0:
		code = shadow.ResultValidation
	case errors.Is(err, manifest.ErrDigest), errors.Is(err, manifest.ErrBlock), errors.Is(err, store.ErrDigest), errors.Is(err, store.ErrBadBlock):
		code = shadow.ResultIntegrity
	case errors.Is(err, store.ErrRangeIgnored), errors.Is(err, store.ErrRedirect), errors.Is(err, store.ErrHTTP), errors.Is(err, store.ErrTooLong):
		code = shadow.ResultInvalidURI
	case errors.Is(err, manifest.ErrContainer), errors.Is(err, store.ErrLayout), errors.Is(err, manifest.ErrSchemaVersion):
		code = shadow.ResultUnsupportedType
	case errors.Is(err, agent.ErrBusy), errors.Is(err, agent.ErrTrialRunning):
		code = shadow.ResultBusy
	}
	return code, err.Error()
}
