// Package setup owns setup files: one YAML file that declares what a LINE account is set
// up with (tags, custom fields, message templates, saved segments, coupons, scenarios
// and auto-replies), applied to a channel chosen at the time, and written back from one
// by Export. A file can therefore be kept in version control, reviewed, and applied to a
// second account. docs/setup-files.md describes the format.
//
// Apply is all or nothing: every problem of the file is collected, with its path in the
// file, and nothing changes unless there are none.
package setup

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/linestep/linestep/internal/message"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
)

// File is a setup file. Keys of the maps are the keys of the things in the channel;
// the top-level keys are in the order Apply applies them.
type File struct {
	Tags        []string             `yaml:"tags,omitempty"`
	Fields      []Field              `yaml:"fields,omitempty"`
	Templates   map[string]Template  `yaml:"templates,omitempty"`
	Segments    map[string]Segment   `yaml:"segments,omitempty"`
	Coupons     map[string]Coupon    `yaml:"coupons,omitempty"`
	Scenarios   map[string]Scenario  `yaml:"scenarios,omitempty"`
	AutoReplies map[string]AutoReply `yaml:"autoreplies,omitempty"`
}

// Field is a custom field definition (friend.Field).
type Field struct {
	Key           string   `yaml:"key"`
	Label         string   `yaml:"label"`
	Type          string   `yaml:"type"` // text | number | date | choice
	Choices       []string `yaml:"choices,omitempty"`
	Purpose       string   `yaml:"purpose"`
	Sensitivity   string   `yaml:"sensitivity,omitempty"` // attribute | normal (default) | special
	RetentionDays int      `yaml:"retention_days,omitempty"`
}

// Template is a named message template.
type Template struct {
	Name     string            `yaml:"name,omitempty"`
	Messages []message.Message `yaml:"messages"`
}

// Segment is a saved segment.
type Segment struct {
	Name   string `yaml:"name,omitempty"`
	Filter Filter `yaml:"filter"`
}

// Scenario is a scenario definition and whether it runs (default: it does).
type Scenario struct {
	scenario.Definition `yaml:",inline"`
	Enabled             *bool `yaml:"enabled,omitempty"`
}

// AutoReply is a keyword auto-reply rule.
type AutoReply struct {
	Name     string            `yaml:"name,omitempty"`
	Match    string            `yaml:"match,omitempty"` // exact (default) | contains | regex
	Keywords []string          `yaml:"keywords"`
	Priority int               `yaml:"priority,omitempty"`
	Window   *Window           `yaml:"window,omitempty"`
	Messages []message.Message `yaml:"messages"`
	Enabled  *bool             `yaml:"enabled,omitempty"`
}

// Window is when an auto-reply may answer (autoreply.Window).
type Window struct {
	Days []string `yaml:"days,omitempty"`
	From string   `yaml:"from"`
	To   string   `yaml:"to"`
}

// Filter is a segment filter read the way segment.Parse reads one: scalars as written,
// so `value: 007` stays the text "007" (a member code) rather than the number 7.
type Filter struct {
	segment.Filter
	set bool // false when the file gives no filter: that must not mean every follower
}

// UnmarshalYAML decodes the node itself so that errors keep their place in the file.
func (f *Filter) UnmarshalYAML(node ast.Node) error {
	if _, ok := node.(*ast.MappingNode); !ok {
		return errors.New("a filter is a mapping, such as {tag: member}; write {} for every follower")
	}
	sf, err := segment.DecodeNode(node)
	if err != nil {
		return err
	}
	f.Filter, f.set = sf, true
	return nil
}

// MarshalYAML writes the filter itself.
func (f Filter) MarshalYAML() (any, error) { return f.Filter, nil }

// Parse reads a setup file. Unknown keys anywhere are errors: a misspelt `stop:` must not
// silently drop a stop rule. The error is message.Problems (one, saying where). Parse
// does not validate; Apply and Validate do.
func Parse(data []byte) (f *File, err error) {
	defer func() { // staff type this; a panic in the YAML library must not end the server
		if r := recover(); r != nil {
			f, err = nil, unreadable(fmt.Sprint(r))
		}
	}()
	f = &File{}
	if len(bytes.TrimSpace(data)) == 0 {
		return f, nil // an empty file declares nothing; with --prune that is meaningful
	}
	if err := yaml.UnmarshalWithOptions(data, f, yaml.DisallowUnknownField()); err != nil {
		return nil, unreadable(yaml.FormatError(err, false, true))
	}
	return f, nil
}

// unreadable is a file the YAML decoder refused. The library's message starts with the
// line and column; the source excerpt after it goes with the English text.
func unreadable(detail string) message.Problems {
	first, excerpt, _ := strings.Cut(strings.TrimSpace(detail), "\n")
	en := "cannot read the file (YAML syntax, or a key that does not exist): " + first
	if excerpt != "" {
		en += "\n" + excerpt
	}
	return message.Problems{{JA: "ファイルを読めません（YAML の書き方か、存在しない項目名です）: " + first, EN: en}}
}

// Marshal writes the file in its canonical form: keys of maps sorted, defaults left out,
// multi-line texts as literal blocks. Export relies on it being stable.
func (f *File) Marshal() ([]byte, error) {
	out, err := yaml.MarshalWithOptions(f, yaml.IndentSequence(true), yaml.UseLiteralStyleIfMultiline(true))
	if err != nil {
		return nil, fmt.Errorf("setup: write file: %w", err)
	}
	return out, nil
}
