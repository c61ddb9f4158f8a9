package headend

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

//go:embed web/index.html
var web embed.FS

// Config configures a head-end instance (`headend serve`).
type Config struct {
	DB        string // SQLite file or postgres:// URL
	Packages  string // package directory
	HTTPAddr  string // package server, web page and read API, e.g. :8080
	PublicURL string // how nodes reach HTTPAddr, e.g. http://10.0.0.1:8080; default from HTTPAddr
	// The broker: embedded (listening on MQTTAddr) unless BrokerURL is set.
	MQTTAddr  string
	BrokerURL string
	ClientID  string      // of this instance on an external broker
	TLS       *tls.Config // the embedded listener's, or the external connection's
	Username  string
	Password  string
	// Shared is the shared-subscription group of instances sharing a
	// fleet on one external broker ("" for one instance).
	Shared string
	Tick   time.Duration // campaign step; default 1s
	// ResendAfter: see Campaigns.ResendAfter.
	ResendAfter time.Duration
	Log         *slog.Logger
	Now         func() time.Time
}

// Server is a running head-end instance.
type Server struct {
	Store     Store
	Replica   *Replica
	Campaigns *Campaigns
	Streamer  *Streamer
	Link      Link
	HTTPAddr  net.Addr
	MQTTAddr  net.Addr // the embedded broker's, nil with an external one

	http    *http.Server
	cancel  context.CancelFunc
	done    chan struct{}
	running bool // the campaign loop was started
}

// Serve starts an instance; Close stops it.
func Serve(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{cancel: cancel, done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Store, err = Open(ctx, cfg.DB, cfg.Now); err != nil {
		return nil, err
	}
	if cfg.BrokerURL != "" {
		id := cfg.ClientID
		if id == "" {
			id = "headend"
		}
		s.Link, err = Dial(ctx, DialOptions{URL: cfg.BrokerURL, ClientID: id, TLS: cfg.TLS, Username: cfg.Username, Password: cfg.Password, CleanSession: cfg.Shared != ""}, cfg.Log)
	} else {
		var e *Embedded
		e, err = NewEmbedded(cfg.MQTTAddr, cfg.TLS, cfg.Log)
		if e != nil {
			s.Link, s.MQTTAddr = e, e.Addr()
		}
	}
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("headend: http: %w", err)
	}
	s.HTTPAddr = ln.Addr()
	public := cfg.PublicURL
	if public == "" {
		public = "http://" + s.HTTPAddr.String()
	}
	pk := &Packages{Dir: cfg.Packages}
	s.Replica = &Replica{Store: s.Store, Link: s.Link, Log: cfg.Log, Now: cfg.Now, Shared: cfg.Shared}
	s.Campaigns = &Campaigns{Store: s.Store, Replica: s.Replica, Packages: pk, BaseURL: public, Log: cfg.Log, Now: cfg.Now, ResendAfter: cfg.ResendAfter}
	s.Replica.OnReport = s.Campaigns.OnReport
	s.Replica.OnRequest = s.Campaigns.OnRequest
	s.Campaigns.Tailor = new(Tailor)
	s.Streamer = &Streamer{Packages: pk, Link: s.Link, Log: cfg.Log, Shared: cfg.Shared}

	mux := http.NewServeMux()
	mux.Handle("GET /pkg/{name}", pk)
	s.api(mux)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(ln)

	if err := s.Replica.Start(ctx); err != nil {
		return nil, err
	}
	if err := s.Streamer.Start(ctx); err != nil {
		return nil, err
	}
	// The broker may have lost its retained documents (the embedded one
	// always has, after a restart): the store has them.
	if err := s.Replica.Republish(ctx); err != nil {
		return nil, err
	}
	s.running = true
	go func() {
		defer close(s.done)
		s.Campaigns.Run(ctx, cfg.Tick)
	}()
	return s, nil
}

// Close stops the instance.
func (s *Server) Close() error {
	s.cancel()
	if s.http != nil {
		s.http.Close()
	}
	if s.running {
		<-s.done
	}
	var errs []error
	if s.Link != nil {
		errs = append(errs, s.Link.Close())
	}
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
	}
	return errors.Join(errs...)
}

func (s *Server) api(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := web.ReadFile("web/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b)
	})
	mux.HandleFunc("GET /api/nodes", func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.Store.Nodes(r.Context())
		for i := range ns {
			ns[i].Reported = nil // the table's columns are enough here
		}
		writeJSON(w, ns, err)
	})
	mux.HandleFunc("GET /api/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		h, err := s.Store.History(r.Context(), r.PathValue("id"))
		writeJSON(w, h, err)
	})
	mux.HandleFunc("GET /api/campaigns", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.Store.Campaigns(r.Context())
		out := []Status{}
		for _, c := range cs {
			if err != nil {
				break
			}
			var st Status
			st, err = s.Campaigns.Status(r.Context(), c.ID)
			out = append(out, st)
		}
		writeJSON(w, out, err)
	})
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
