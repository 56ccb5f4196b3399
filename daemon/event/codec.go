package event

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// all lists one value of every event type: the wire names for other
// processes (the status API's event stream, `towerreg-dev dash`) come from
// it. A test checks that no type is missing.
var all = []Event{
	ManifestServed{},
	BlobServed{},
	LayerPacked{},
	LayerReloaded{},
	BlobStarted{},
	TokenIssued{},
	TokenExpired{},
	TunnelStatus{},
	OffloadStatus{},
}

// Kind is the wire name of e's type, e.g. "ManifestServed".
func Kind(e Event) string { return reflect.TypeOf(e).Name() }

// Decode reads an event of the named kind from its JSON.
func Decode(kind string, data []byte) (Event, error) {
	for _, z := range all {
		if Kind(z) != kind {
			continue
		}
		p := reflect.New(reflect.TypeOf(z))
		if err := json.Unmarshal(data, p.Interface()); err != nil {
			return nil, fmt.Errorf("decode %s event: %w", kind, err)
		}
		return p.Elem().Interface().(Event), nil
	}
	return nil, fmt.Errorf("unknown event kind %q", kind)
}
