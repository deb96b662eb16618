package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder turns a YAML node tree into Go values. It does what yaml.v3 with KnownFields(true) does (unknown keys,
// duplicate keys and wrong types are errors), but it names every problem by its path (`regions[1].api_key`), keeps
// going after the first one, and expands ${NAME} in each scalar so an unset variable names its field too.
type decoder struct {
	env  func(string) (string, bool)
	errs Errors
}

var durationType = reflect.TypeFor[Duration]()

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n != nil && n.Line > 0 {
		msg += fmt.Sprintf(" (line %d)", n.Line)
	}
	d.errs.add(path, "%s", msg)
}

// decode stores node n into the value pointed to by out.
func (d *decoder) decode(n *yaml.Node, path string, out any) {
	d.value(n, path, reflect.ValueOf(out).Elem())
}

func (d *decoder) value(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		if v.Kind() == reflect.Pointer {
			v.Set(reflect.New(v.Type().Elem())) // `entra:` alone means `entra: {}`
		}
		return // an empty key keeps its zero value, the default
	}
	switch {
	case v.Type() == durationType:
		d.duration(n, path, v)
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.value(n, path, p.Elem())
		v.Set(p)
	case v.Kind() == reflect.Struct:
		d.structure(n, path, v)
	case v.Kind() == reflect.Slice:
		d.sequence(n, path, v)
	case v.Kind() == reflect.Map:
		d.mapping(n, path, v)
	default:
		d.scalar(n, path, v)
	}
}

func (d *decoder) structure(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "must be a mapping of keys, not %s", kindName(n))
		return
	}
	fields := map[string]int{}
	t := v.Type()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		p := join(path, key)
		if seen[key] {
			d.fail(p, k, "duplicate key")
			continue
		}
		seen[key] = true
		idx, ok := fields[key]
		if !ok {
			d.fail(p, k, "unknown key%s", suggest(key, fields))
			continue
		}
		d.value(val, p, v.Field(idx))
	}
}

func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "must be a list, not %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "must be a mapping, not %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.expand(k, path)
		if !ok {
			continue
		}
		p := path + "." + key
		if m.MapIndex(reflect.ValueOf(key)).IsValid() {
			d.fail(p, k, "duplicate key")
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		d.value(val, p, e)
		m.SetMapIndex(reflect.ValueOf(key), e)
	}
	v.Set(m)
}

func (d *decoder) scalar(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "must be a single value, not %s", kindName(n))
		return
	}
	s, ok := d.expand(n, path)
	if !ok {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(path, n, "must be true or false, not %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || (v.Kind() == reflect.Int && (i > math.MaxInt32 || i < math.MinInt32)) {
			d.fail(path, n, "must be a whole number, not %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.fail(path, n, "must be a number, not %q", s)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(path, n, "unsupported type %s", v.Type())
	}
}

func (d *decoder) duration(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "must be a duration such as \"250ms\" or \"2s\", not %s", kindName(n))
		return
	}
	s, ok := d.expand(n, path)
	if !ok {
		return
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		d.fail(path, n, "must be a duration such as \"250ms\" or \"2s\", not %q", s)
		return
	}
	v.SetInt(int64(t))
}

// expand replaces every ${NAME} in the scalar n. An unset variable is an error naming the field, never its value.
func (d *decoder) expand(n *yaml.Node, path string) (string, bool) {
	s := n.Value
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			d.fail(path, n, "unterminated ${ in value")
			return "", false
		}
		name := s[i+2 : i+j]
		if !validEnvName(name) {
			d.fail(path, n, "%q is not a valid environment variable name", name)
			return "", false
		}
		val, ok := d.env(name)
		if !ok {
			d.fail(path, n, "environment variable %s is not set", name)
			return "", false
		}
		b.WriteString(s[:i])
		b.WriteString(val)
		s = s[i+j+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// suggest proposes the known key closest to a misspelt one.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for f := range fields {
		if dist := editDistance(key, f); dist < bestDist || (dist == bestDist && f < best) {
			best, bestDist = f, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func trimYAMLPrefix(s string) string { return "invalid YAML: " + strings.TrimPrefix(s, "yaml: ") }

func sortStrings(s []string) { sort.Strings(s) }
