package dialplans

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Document kinds.
const (
	KindRule     = "rule"
	KindCustomer = "customer"
)

// Doc is one parsed dialplan file: a Rule or a Customer.
type Doc struct {
	File     string
	Kind     string    // KindRule or KindCustomer
	Rule     *Rule     // set when Kind is KindRule
	Customer *Customer // set when Kind is KindCustomer; its Rule is not resolved yet
}

// Parse checks one dialplan file on its own. file names it in problems.
// The error, if any, is an *Error listing every problem found with its line.
// Checks that need other files (does the rule exist, are names unique) are
// left to Load.
func Parse(file string, data []byte) (doc *Doc, err error) {
	d := &decoder{file: file}
	root := d.yamlDoc(data)
	if root != nil {
		doc = d.doc(root)
	}
	if len(d.probs) > 0 {
		return nil, errorOf(d.probs)
	}
	return doc, nil
}

// yamlDoc parses data into the mapping of its single document.
func (d *decoder) yamlDoc(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on crafted input in the past; a bad file
		// must never take the daemon down.
		if r := recover(); r != nil {
			d.errorf(nil, "YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(&yaml.Node{Line: 1}, "empty file: want kind: rule or kind: customer")
		} else {
			d.yamlError(err)
		}
		return nil
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case err == nil:
		d.errorf(&more, "only one document per file")
		return nil
	case !errors.Is(err, io.EOF):
		d.yamlError(err)
		return nil
	}
	root = &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = resolve(root)
	if root == nil || root.Kind != yaml.MappingNode {
		line := 1
		if root != nil && root.Line > 0 {
			line = root.Line
		}
		d.errorf(&yaml.Node{Line: line}, "want a mapping starting with kind: rule or kind: customer")
		return nil
	}
	return root
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: did not find
// expected key") into problems with lines.
func (d *decoder) yamlError(err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, msg := range msgs {
		msg = strings.TrimPrefix(msg, "yaml: ")
		line := 0
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		d.errorf(&yaml.Node{Line: line}, "invalid YAML: %s", msg)
	}
}

func (d *decoder) doc(root *yaml.Node) *Doc {
	var kindN *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k != nil && k.Value == "kind" {
			kindN = resolve(root.Content[i+1])
			break
		}
	}
	if kindN == nil {
		d.errorf(root, "missing required key \"kind\" (want rule or customer)")
		return nil
	}
	doc := &Doc{File: d.file}
	switch kind := kindN.Value; {
	case kindN.Kind == yaml.ScalarNode && kind == KindRule:
		f, _ := d.mapping(root, "rule", "kind", "name", "type", "codes", "random_digits", "park_any_number")
		doc.Kind, doc.Rule = KindRule, d.rule(f)
	case kindN.Kind == yaml.ScalarNode && kind == KindCustomer:
		f, _ := d.mapping(root, "customer", "kind", "name", "domain", "rule", "features", "api", "accounts", "dids", "trunks", "slots")
		doc.Kind, doc.Customer = KindCustomer, d.customer(f)
	default:
		d.errorf(kindN, "kind: unknown value %s (want rule or customer)", quoteNode(kindN))
		return nil
	}
	return doc
}

func quoteNode(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return "(a list or mapping)"
	}
	return fmt.Sprintf("%q", n.Value)
}
