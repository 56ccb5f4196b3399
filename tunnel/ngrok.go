package tunnel

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.ngrok.com/ngrok/v2"
)

// dialTimeout bounds one attempt to reach ngrok. Without it a machine
// whose packets vanish (no route, a silent firewall) would wait for the
// kernel's TCP timeout, minutes, before saying anything.
const dialTimeout = 5 * time.Second

// NgrokOptions configures the ngrok tunnel.
type NgrokOptions struct {
	Authtoken string
	// Domain is a reserved domain ("reg.ngrok.app"); empty means the one
	// ngrok assigns.
	Domain  string
	Version string
	Log     *slog.Logger
}

// Ngrok is the tunnel through ngrok, with its Go SDK: the agent runs in
// this process, no ngrok binary is needed.
type Ngrok struct {
	o NgrokOptions
}

// NewNgrok returns the ngrok tunnel. It needs an auth token.
func NewNgrok(o NgrokOptions) (*Ngrok, error) {
	if o.Authtoken == "" {
		return nil, errors.New("the ngrok tunnel needs an auth token")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	return &Ngrok{o: o}, nil
}

// Provider names the tunnel in the config, the status and the events.
func (n *Ngrok) Provider() string { return "ngrok" }

// Listen connects and returns the listener that the public URL's
// connections arrive on; it has reported up, with the URL, before it
// returns. It returns an error only once ctx ends or the failure is one
// that no retry mends (a domain that is not the account's, say).
//
// ctx bounds the whole session, not just the connect: a caller closes the
// listener, lets its connections finish, then cancels ctx to disconnect.
// Every state change goes to report, in order, until ctx ends; report
// must not block. The SDK retries a failed connect by itself, with a
// backoff from 0.5 s to 30 s, and reconnects a dropped session with its
// endpoint; Listen turns each of its failures into a report.
func (n *Ngrok) Listen(ctx context.Context, report func(state, url, reason string)) (net.Listener, error) {
	type reported struct{ state, url, reason string }
	var (
		mu   sync.Mutex
		url  string // set once the endpoint is bound
		isUp bool
		last reported
	)
	status := func(state, url, reason string) {
		s := reported{state, url, reason}
		// Each retry fails the same way while the machine is offline:
		// one report says it.
		if s == last {
			return
		}
		last = s
		report(state, url, reason)
	}
	onEvent := func(e ngrok.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return // a disconnect we asked for: the caller says so
		}
		switch e := e.(type) {
		case *ngrok.EventAgentConnectSucceeded:
			// The first connect has no endpoint yet: Listen reports it
			// once bound. A reconnect has bound it again already.
			if url != "" {
				isUp = true
				status(Up, url, "")
			}
		case *ngrok.EventAgentDisconnected:
			if e.Error == nil {
				return
			}
			reason := n.plain(e.Error)
			if isUp {
				isUp = false
				status(Reconnecting, "", reason)
				return
			}
			status(Down, "", reason+" (retrying)")
		}
	}
	agent, err := ngrok.NewAgent(
		ngrok.WithAuthtoken(n.o.Authtoken),
		ngrok.WithAutoConnect(false),
		ngrok.WithClientInfo("towerreg-dev", n.o.Version),
		ngrok.WithDialer(&net.Dialer{Timeout: dialTimeout}),
		ngrok.WithEventHandler(onEvent),
		ngrok.WithLogger(slog.New(&sdkLog{h: n.o.Log.Handler(), secret: n.o.Authtoken})),
	)
	if err != nil {
		return nil, fmt.Errorf("ngrok: %w", err)
	}
	// Under mu, as the event handler reports: it may run at any time.
	locked := func(state, reason string) {
		mu.Lock()
		defer mu.Unlock()
		status(state, "", reason)
	}
	locked(Connecting, "")
	if err := agent.Connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		reason := n.plain(err)
		locked(Down, reason)
		return nil, errors.New("ngrok: " + reason)
	}
	opts := []ngrok.EndpointOption{ngrok.WithDescription("towerreg-dev public registry")}
	if n.o.Domain != "" {
		opts = append(opts, ngrok.WithURL("https://"+n.o.Domain))
	}
	ep, err := agent.Listen(ctx, opts...)
	if err != nil {
		agent.Disconnect()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		reason := n.plain(err)
		locked(Down, reason)
		return nil, errors.New("ngrok: " + reason)
	}
	context.AfterFunc(ctx, func() { agent.Disconnect() })
	mu.Lock()
	url, isUp = ep.URL().String(), true
	status(Up, url, "")
	mu.Unlock()
	return ep, nil
}

// authCodes are ngrok's errors for an auth token that is malformed,
// unknown or revoked.
var authCodes = map[string]bool{"ERR_NGROK_105": true, "ERR_NGROK_106": true, "ERR_NGROK_107": true}

// plain says why err happened in words a developer acts on, and never
// with the auth token in them (ngrok's own messages quote it).
func (n *Ngrok) plain(err error) string {
	var (
		nerr ngrok.Error
		dns  *net.DNSError
		op   *net.OpError
		cert x509.UnknownAuthorityError
	)
	var s string
	switch {
	case errors.As(err, &nerr) && authCodes[nerr.Code()]:
		s = fmt.Sprintf("ngrok refused the auth token (%s): check NGROK_AUTHTOKEN or tunnel.authtoken in the config", nerr.Code())
	case errors.As(err, &nerr):
		msg, _, _ := strings.Cut(strings.TrimSpace(nerr.Error()), "\n")
		s = fmt.Sprintf("ngrok refused: %s (%s)", msg, nerr.Code())
	case errors.As(err, &dns):
		s = fmt.Sprintf("cannot reach ngrok: looking up %s failed (%s); is this machine offline?", dns.Name, dns.Err)
	case errors.As(err, &op) && op.Timeout():
		s = fmt.Sprintf("cannot reach ngrok at %s: no answer within %v; is this machine offline, or a firewall in the way?", addrOf(op), dialTimeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		s = fmt.Sprintf("cannot reach ngrok at %s: connection refused", addrOf(op))
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		s = "cannot reach ngrok: no route to it; is this machine offline?"
	case errors.As(err, &cert):
		s = "the server that answered as ngrok is not ngrok (its certificate is not ngrok's): a proxy in the way?"
	default:
		s = err.Error()
	}
	return redact(s, n.o.Authtoken)
}

func addrOf(op *net.OpError) string {
	if op == nil || op.Addr == nil {
		return "its server"
	}
	return op.Addr.String()
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[auth token]")
}

// sdkLog passes the ngrok SDK's log lines to ours. Its errors are the
// failures that the tunnel reports in plain words, so they, like its
// chatter, go to debug; its warnings (about this build) stay warnings.
// None carries the auth token.
type sdkLog struct {
	h      slog.Handler
	secret string
}

func (l *sdkLog) level(lv slog.Level) slog.Level {
	if lv == slog.LevelWarn {
		return lv
	}
	return slog.LevelDebug
}

func (l *sdkLog) Enabled(ctx context.Context, lv slog.Level) bool {
	return l.h.Enabled(ctx, l.level(lv))
}

func (l *sdkLog) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, l.level(r.Level), "ngrok: "+redact(r.Message, l.secret), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(l.attr(a))
		return true
	})
	return l.h.Handle(ctx, out)
}

func (l *sdkLog) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		as := v.Group()
		out := make([]any, len(as))
		for i, g := range as {
			out[i] = l.attr(g)
		}
		return slog.Group(a.Key, out...)
	}
	if l.secret != "" && strings.Contains(v.String(), l.secret) {
		return slog.String(a.Key, redact(v.String(), l.secret))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (l *sdkLog) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = l.attr(a)
	}
	return &sdkLog{h: l.h.WithAttrs(out), secret: l.secret}
}

func (l *sdkLog) WithGroup(name string) slog.Handler {
	return &sdkLog{h: l.h.WithGroup(name), secret: l.secret}
}
