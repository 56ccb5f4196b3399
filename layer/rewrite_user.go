package layer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// injectUser makes a container of an image with a User start as root, so
// that the entry can mount, and hands the image's User to the entry in
// UserEnv, for it to switch to before it execs the image's program. An
// image without a User runs as root already and is left as it is.
func injectUser(inner *object) error {
	user, err := inner.str("User")
	if err != nil {
		return err
	}
	env, existing, err := envVar(inner, UserEnv)
	if err != nil {
		return err
	}
	switch {
	case user == RootUser && len(existing) > 0:
		// Rewritten before (a re-pull, or an image built on one that
		// set no USER of its own): the variable holds the image's user.
		return nil
	case user == "":
		if len(existing) == 0 {
			return nil
		}
		// The config says root; a leftover variable would make the entry
		// switch to a user the image no longer names.
		env = deleteAll(env, existing)
	default:
		if env, err = putEnv(env, existing, UserEnv+"="+user); err != nil {
			return err
		}
		if err := inner.set("User", RootUser); err != nil {
			return err
		}
	}
	return inner.set("Env", env)
}

// envVar returns the inner config's Env, undecoded, and the indexes of the
// entries that set key.
func envVar(inner *object, key string) (env []json.RawMessage, existing []int, err error) {
	env, err = inner.array("Env")
	if err != nil {
		return nil, nil, err
	}
	prefix := key + "="
	for i, raw := range env {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, fmt.Errorf("the Env entry %d is not a string", i)
		}
		if strings.HasPrefix(s, prefix) {
			existing = append(existing, i)
		}
	}
	return env, existing, nil
}

// putEnv sets kv in env, where existing are the indexes of the entries of
// its variable. A leftover entry is replaced where it stood; duplicates
// would leave which one wins to the runtime.
func putEnv(env []json.RawMessage, existing []int, kv string) ([]json.RawMessage, error) {
	v, err := marshal(kv)
	if err != nil {
		return nil, err
	}
	if len(existing) == 0 {
		return append(env, v), nil
	}
	env[existing[0]] = v
	return deleteAll(env, existing[1:]), nil
}

// deleteAll removes the entries at the ascending indexes from env.
func deleteAll(env []json.RawMessage, indexes []int) []json.RawMessage {
	for _, i := range slices.Backward(indexes) {
		env = slices.Delete(env, i, i+1)
	}
	return env
}
