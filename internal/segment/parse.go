package segment

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Parse reads a filter written in YAML or JSON (JSON is YAML) and validates it.
//
// It is stricter than decoding with yaml.Unmarshal, and safer for a filter that picks
// broadcast recipients:
//   - Unknown keys are errors: a misspelt `tags:` at the top must not turn a broadcast to
//     one tag into a broadcast to every follower. For the same reason an empty document
//     is an error; write {} to mean every follower.
//   - Scalars are taken as written: `value: 007` is the text "007" (a member code), not
//     the number 7, and `value: 1.50` stays "1.50".
func Parse(data []byte) (f Filter, err error) {
	// The YAML library is large and staff type the input: a panic in it must come back
	// as an error, not take the server down.
	defer func() {
		if r := recover(); r != nil {
			f, err = Filter{}, fmt.Errorf("%w: unreadable YAML (%v)", ErrInvalid, r)
		}
	}()
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return Filter{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var docs []*ast.DocumentNode
	for _, doc := range file.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	switch len(docs) {
	case 0:
		return Filter{}, fmt.Errorf("%w: the filter is empty: write {} to select every follower", ErrInvalid)
	case 1:
	default:
		return Filter{}, fmt.Errorf("%w: one filter per document", ErrInvalid)
	}
	if err := literalScalars(docs[0].Body, 0); err != nil {
		return Filter{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := yaml.NodeToValue(docs[0].Body, &f, yaml.DisallowUnknownField()); err != nil {
		return Filter{}, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimSpace(yaml.FormatError(err, false, true)))
	}
	if err := f.Validate(); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// DecodeNode decodes a filter from a YAML node inside a larger document (a setup file),
// the way Parse reads one: scalars as written, unknown keys refused. It does not
// validate; the node is changed in place.
func DecodeNode(n ast.Node) (Filter, error) {
	if err := literalScalars(n, 0); err != nil {
		return Filter{}, err
	}
	var f Filter
	if err := yaml.NodeToValue(n, &f, yaml.DisallowUnknownField()); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// literalScalars turns the numbers and booleans under n into strings of their source
// text: every scalar of a Filter is a string, and YAML's reading of 007 as 7 would change
// what is matched.
func literalScalars(n ast.Node, depth int) error {
	if depth > 4*maxDepth+8 {
		return errors.New("nested too deeply")
	}
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, v := range n.Values {
			if err := literalScalars(v, depth+1); err != nil {
				return err
			}
		}
	case *ast.MappingValueNode:
		n.Value = literal(n.Value)
		return literalScalars(n.Value, depth+1)
	case *ast.SequenceNode:
		for i := range n.Values {
			n.Values[i] = literal(n.Values[i])
			if err := literalScalars(n.Values[i], depth+1); err != nil {
				return err
			}
		}
	case *ast.AnchorNode:
		n.Value = literal(n.Value)
		return literalScalars(n.Value, depth+1)
	case *ast.TagNode:
		return errors.New("YAML tags (!!) are not supported in a filter")
	}
	return nil
}

func literal(n ast.Node) ast.Node {
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		tk := *n.GetToken()
		tk.Type = token.StringType
		return ast.String(&tk)
	}
	return n
}
