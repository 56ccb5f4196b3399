// Package feed attaches the dashboard to a running daemon over its local
// HTTP API: the event stream (Server-Sent Events on /_towerreg/events),
// the status document, and the re-pack route. It is what `towerreg-dev
// dash` reads instead of an in-process bus.
package feed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tower-reg/tower-reg/daemon/admin"
	"github.com/tower-reg/tower-reg/daemon/event"
)

// Client reads one daemon.
type Client struct {
	base   string
	hc     *http.Client
	log    *slog.Logger
	events chan event.Event
	// retry is the wait before reconnecting a lost stream.
	retry time.Duration
}

// New returns a client of the daemon listening on addr (host:port).
func New(addr string, log *slog.Logger) *Client {
	return &Client{base: "http://" + addr, hc: &http.Client{}, log: log, events: make(chan event.Event, 4096), retry: time.Second}
}

// Events implements tui.Source. The channel is closed when Run returns.
func (c *Client) Events() <-chan event.Event { return c.events }

// Status implements tui.Source.
func (c *Client) Status(ctx context.Context) (admin.Status, error) {
	var st admin.Status
	resp, err := c.do(ctx, http.MethodGet, admin.StatusPath)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("read %s: %w", admin.StatusPath, err)
	}
	return st, nil
}

// Repack implements tui.Source.
func (c *Client) Repack(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodPost, admin.ReloadPath)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// do sends a request; an answer other than 2xx is an error with the
// daemon's message.
func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if method == http.MethodPost {
		// The daemon takes POSTs of JSON only, so that no web page can
		// send them (its body is empty all the same).
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// Run reads the event stream until ctx ends, reconnecting when it is lost
// (a daemon restarted); events missed meanwhile are gone, which the log
// says. It closes the Events channel when it returns.
func (c *Client) Run(ctx context.Context) {
	defer close(c.events)
	lost := false
	for {
		err := c.stream(ctx, func() {
			if lost {
				c.log.Warn("event stream back", "daemon", c.base)
				lost = false
			}
		})
		if ctx.Err() != nil {
			return
		}
		if !lost {
			c.log.Warn("event stream lost; reconnecting", "daemon", c.base, "error", err)
			lost = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.retry):
		}
	}
}

// stream reads one connection of the event stream; connected is called
// once the daemon answered.
func (c *Client) stream(ctx context.Context, connected func()) error {
	resp, err := c.do(ctx, http.MethodGet, admin.EventsPath)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	connected()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var kind string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if kind != "" || data.Len() > 0 {
				c.dispatch(ctx, kind, data.String())
			}
			kind = ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
			// A comment: the greeting or a keep-alive.
		case strings.HasPrefix(line, "event:"):
			kind = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", admin.EventsPath, err)
	}
	return errors.New("the daemon closed the event stream")
}

func (c *Client) dispatch(ctx context.Context, kind, data string) {
	if kind == "dropped" {
		n, _ := strconv.ParseInt(data, 10, 64)
		c.log.Warn("the daemon dropped events for this dashboard (it fell behind)", "total", n)
		return
	}
	e, err := event.Decode(kind, []byte(data))
	if err != nil {
		// A newer daemon may send kinds this build does not know.
		c.log.Debug("skip event", "kind", kind, "error", err)
		return
	}
	select {
	case c.events <- e:
	case <-ctx.Done():
	}
}
