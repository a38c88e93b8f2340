package stripefake

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// form is a decoded Stripe request body: Stripe nests parameters with
// bracket notation (line_items[0][price_data][currency]), so values are either
// strings or nested forms, and a list is a form whose keys are indexes.
type form map[string]any

// parseForm turns flat url.Values into a nested form, rejecting a key that is
// used both as a scalar and as a parent, as Stripe does.
func parseForm(v url.Values) (form, error) {
	root := form{}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path, err := splitKey(k)
		if err != nil {
			return nil, err
		}
		vals := v[k][:1]
		if path[len(path)-1] == "" {
			// "a[]=x&a[]=y" appends each value; stripe-go sends indexes
			// instead, but curl users write it this way.
			vals = v[k]
		}
		for _, val := range vals {
			if err := setPath(root, k, path, val); err != nil {
				return nil, err
			}
		}
	}
	return root, nil
}

// setPath stores val at path, creating parents; k is the original key, for
// error messages.
func setPath(root form, k string, path []string, val string) error {
	cur := root
	for i, seg := range path {
		if seg == "" {
			seg = strconv.Itoa(len(cur))
		}
		if i == len(path)-1 {
			if _, ok := cur[seg]; ok {
				return fmt.Errorf("conflicting values for parameter %s", k)
			}
			cur[seg] = val
			return nil
		}
		next, ok := cur[seg]
		if !ok {
			n := form{}
			cur[seg] = n
			cur = n
			continue
		}
		n, ok := next.(form)
		if !ok {
			return fmt.Errorf("conflicting values for parameter %s", k)
		}
		cur = n
	}
	return nil
}

func splitKey(k string) ([]string, error) {
	i := strings.IndexByte(k, '[')
	if i < 0 {
		return []string{k}, nil
	}
	if i == 0 {
		return nil, fmt.Errorf("invalid parameter name %s", k)
	}
	path := []string{k[:i]}
	rest := k[i:]
	for rest != "" {
		if rest[0] != '[' {
			return nil, fmt.Errorf("invalid parameter name %s", k)
		}
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return nil, fmt.Errorf("invalid parameter name %s", k)
		}
		path = append(path, rest[1:j])
		rest = rest[j+1:]
	}
	return path, nil
}

func (f form) str(key string) (string, bool) {
	s, ok := f[key].(string)
	return s, ok
}

func (f form) sub(key string) form {
	s, _ := f[key].(form)
	return s
}

// list returns the entries of an indexed parameter in index order.
func (f form) list(key string) []any {
	m := f.sub(key)
	idx := make([]int, 0, len(m))
	for k := range m {
		n, err := strconv.Atoi(k)
		if err != nil {
			return nil
		}
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]any, 0, len(idx))
	for _, n := range idx {
		out = append(out, m[strconv.Itoa(n)])
	}
	return out
}

// strMap reads a metadata-like parameter; Stripe refuses nested values there.
func (f form) strMap(key, param string) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range f.sub(key) {
		s, ok := v.(string)
		if !ok {
			return nil, invalid(param, "", "Invalid value for %s: nested objects are not allowed.", param)
		}
		if len(k) > 40 {
			return nil, invalid(param, "", "Metadata keys can have up to 40 characters; %q has %d.", k, len(k))
		}
		if len(s) > 500 {
			return nil, invalid(param, "", "Metadata values can have up to 500 characters; the value for %q has %d.", k, len(s))
		}
		out[k] = s
	}
	if len(out) > 50 {
		return nil, invalid(param, "", "Metadata can have up to 50 keys.")
	}
	return out, nil
}

// int64Param parses an optional integer; ok reports whether it was present.
func (f form) int64Param(key, param string) (n int64, ok bool, err error) {
	s, present := f[key]
	if !present {
		return 0, false, nil
	}
	str, isStr := s.(string)
	if !isStr {
		return 0, false, invalid(param, "parameter_invalid_integer", "Invalid integer: %s", param)
	}
	n, err = strconv.ParseInt(str, 10, 64)
	if err != nil {
		return 0, false, invalid(param, "parameter_invalid_integer", "Invalid integer: %s", str)
	}
	return n, true, nil
}
