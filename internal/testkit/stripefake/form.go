package stripefake

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// form is a decoded Stripe request body: Stripe nests parameters with
// bracket notation (line_items[0][price_data][currency]), so values are either
// strings or nested forms, and a list is a form whose keys are indexes.
type form map[string]any

// parseForm turns a query string (a POST's body, a GET's query) into a
// nested form, rejecting a key that is used both as a scalar and as a
// parent, as Stripe does. Names are taken in sorted order, as from
// url.Values, and the first value of a repeated name counts, except that
// each "a[]" appends (appends); it reads the string once, where url.ParseQuery's
// map of slices, sorted and split into paths, was half the stand-in's
// handler in a benchmark making a Checkout Session per hold.
func parseForm(query string) (form, error) {
	n := strings.Count(query, "&") + 1
	if n > maxParams {
		return nil, fmt.Errorf("number of URL query parameters exceeded limit")
	}
	pairs := make([]formPair, 0, n)
	for query != "" {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		if strings.Contains(kv, ";") {
			return nil, fmt.Errorf("invalid semicolon separator in query")
		}
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err == nil {
			v, err = url.QueryUnescape(v)
		}
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, formPair{k, v})
	}
	slices.SortStableFunc(pairs, func(a, b formPair) int { return strings.Compare(a.k, b.k) })
	root := form{}
	for i, p := range pairs {
		if i > 0 && pairs[i-1].k == p.k && !appends(p.k) {
			continue
		}
		if err := setPath(root, p.k, p.v); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// maxParams is url.ParseQuery's limit on a query's parameters, counted as
// it counts them (the default of GODEBUG urlmaxqueryparams), so that the
// fake refuses what it refused when it parsed with it, and sameParams can
// parse every body parseForm took.
const maxParams = 10000

// appends says whether each value of name k is stored (a[], and the empty
// name), rather than the first: whether its path's last segment is empty,
// as setPath walks it.
func appends(k string) bool {
	last, rest := k, ""
	if i := strings.IndexByte(k, '['); i >= 0 {
		last, rest = k[:i], k[i:]
	}
	for rest != "" {
		j := strings.IndexByte(rest, ']')
		if rest[0] != '[' || j < 0 {
			return false // invalid: setPath says so
		}
		last, rest = rest[1:j], rest[j+1:]
	}
	return last == ""
}

type formPair struct{ k, v string }

// setPath stores val at the path k names (a, a[b], a[b][0], a[]),
// creating parents.
func setPath(root form, k, val string) error {
	seg, rest := k, ""
	if i := strings.IndexByte(k, '['); i == 0 {
		return fmt.Errorf("invalid parameter name %s", k)
	} else if i > 0 {
		seg, rest = k[:i], k[i:]
	}
	cur := root
	for {
		var next string
		last := rest == ""
		if !last {
			j := strings.IndexByte(rest, ']')
			if rest[0] != '[' || j < 0 {
				return fmt.Errorf("invalid parameter name %s", k)
			}
			next, rest = rest[1:j], rest[j+1:]
		}
		if seg == "" {
			seg = strconv.Itoa(len(cur))
		}
		if last {
			if _, ok := cur[seg]; ok {
				return fmt.Errorf("conflicting values for parameter %s", k)
			}
			cur[seg] = val
			return nil
		}
		switch n := cur[seg].(type) {
		case nil:
			m := form{}
			cur[seg] = m
			cur = m
		case form:
			cur = n
		default:
			return fmt.Errorf("conflicting values for parameter %s", k)
		}
		seg = next
	}
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
