package setup

import (
	"errors"
	"fmt"
	"strings"

	"github.com/linestep/linestep/internal/friend"
	"github.com/linestep/linestep/internal/scenario"
	"github.com/linestep/linestep/internal/segment"
	"github.com/linestep/linestep/internal/store"
	"github.com/linestep/linestep/internal/template"
)

// References are checked here, in the transaction, once the fields and tags of the file
// exist, so that every broken one is reported with its path: the services report only
// the first they meet.

// checkScenario checks what a scenario refers to, as scenario.SaveAll will.
func (a *applier) checkScenario(path string, d scenario.Definition) error {
	if d.Trigger.Type == scenario.TriggerField {
		if _, _, err := a.fieldRef(path+".trigger.field", d.Trigger.Field, false); err != nil {
			return err
		}
	}
	for i, k := range d.Stop.Scenarios {
		a.scenarioRef(fmt.Sprintf("%s.stop.scenarios[%d]", path, i), k)
	}
	for i, st := range d.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", path, i)
		if st.Timing.Field != "" {
			if _, _, err := a.fieldRef(sp+".timing.field", st.Timing.Field, true); err != nil {
				return err
			}
		}
		for _, k := range sortedKeys(st.Actions.SetFields) {
			p := sp + ".actions.set_fields." + k
			f, ok, err := a.fieldRef(p, k, false)
			if err != nil {
				return err
			}
			if ok {
				if _, err := f.CheckValue(st.Actions.SetFields[k]); err != nil {
					a.add(p, fmt.Sprintf("項目「%s」に合わない値です（%s）", k, err), err.Error())
				}
			}
		}
		for j, k := range st.Actions.Start {
			a.scenarioRef(fmt.Sprintf("%s.actions.start[%d]", sp, j), k)
		}
		for j, k := range st.Actions.Stop {
			a.scenarioRef(fmt.Sprintf("%s.actions.stop[%d]", sp, j), k)
		}
		if st.Template != "" {
			if err := a.templateRef(sp+".template", st.Key, st.Template); err != nil {
				return err
			}
		}
		if st.If != nil {
			// A step's condition may name tags nobody has yet: saving creates them.
			if err := a.checkFilter(sp+".if", *st.If, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldRef looks up a field the file refers to. ok is false, with the problem added,
// when there is no such field (or not of type date when date is asked for); a field the
// file defines wrongly is reported where it is defined, not again here.
func (a *applier) fieldRef(path, key string, date bool) (f friend.Field, ok bool, err error) {
	if a.bad["fields."+key] {
		return friend.Field{}, false, nil
	}
	f, err = a.svc.Friends.FieldByKey(a.ctx, a.tx, a.ch, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.add(path, fmt.Sprintf("項目「%s」がありません。fields に定義してください", key),
			fmt.Sprintf("there is no field %q: define it under fields", key))
		return friend.Field{}, false, nil
	case err != nil:
		return friend.Field{}, false, err
	case date && f.Type != friend.DateField:
		a.add(path, fmt.Sprintf("項目「%s」は日付（type: date）ではありません", key),
			fmt.Sprintf("field %q is not a date field (type: date)", key))
		return friend.Field{}, false, nil
	}
	return f, true, nil
}

// templateRef checks a template a step sends. Templates are saved before scenarios, so
// the file's own are in the channel by now; a template the file defines wrongly is
// reported where it is defined.
func (a *applier) templateRef(path, step, key string) error {
	if a.bad["templates."+key] {
		return nil
	}
	_, inFile := a.f.Templates[key]
	if !inFile && a.opt.Prune {
		a.add(path, fmt.Sprintf("ステップ「%s」のテンプレート「%s」がファイルにありません（--prune では templates に書いたものだけが残ります）", step, key),
			fmt.Sprintf("step %q sends template %q, which the file does not declare (with --prune only the templates in the file remain)", step, key))
		return nil
	}
	_, err := template.Get(a.ctx, a.tx, a.ch, key)
	if errors.Is(err, store.ErrNotFound) {
		a.add(path, fmt.Sprintf("ステップ「%s」のテンプレート「%s」がありません（templates に書くか、先に作成してください）", step, key),
			fmt.Sprintf("step %q sends template %q, which does not exist (declare it under templates)", step, key))
		return nil
	}
	return err
}

func (a *applier) scenarioRef(path, key string) {
	if !a.scenarioKeys[key] {
		where := "scenarios に書くか、先に作成してください"
		whereEN := "declare it under scenarios"
		if a.opt.Prune {
			where, whereEN = "--prune では scenarios に書いたものだけが残ります", "with --prune only the scenarios in the file remain"
		}
		a.add(path, fmt.Sprintf("シナリオ「%s」がありません（%s）", key, where),
			fmt.Sprintf("there is no scenario %q (%s)", key, whereEN))
	}
}

// checkFilter resolves a filter against the channel as it is in the transaction. Its
// scenarios are checked against the file and the channel (they may be saved later in the
// same apply), and with autoTags its tags are not checked at all.
func (a *applier) checkFilter(path string, f segment.Filter, autoTags bool) error {
	probe := rewrite(f, path, func(p string, n *segment.Filter) bool {
		switch {
		case n.Scenario != nil:
			a.scenarioRef(p+".scenario.key", n.Scenario.Key)
			return true
		case n.Tag != "" && autoTags:
			return true
		case n.Field != nil && a.bad["fields."+n.Field.Key]:
			return true
		}
		return false
	})
	_, err := segment.Resolve(a.ctx, a.tx, a.ch, probe)
	var se *segment.Error
	if errors.As(err, &se) {
		if strings.HasPrefix(se.Msg, "unknown tag") {
			a.add(join(path, se.Path), "タグがありません。tags に書いてください: "+se.Msg, se.Msg+": list it under tags")
			return nil
		}
		a.filter(path, err)
		return nil
	}
	return err
}

// rewrite copies f, replacing each node for which replace returns true by a condition
// that resolves whatever the channel holds ({status: any}). Paths are segment's.
func rewrite(f segment.Filter, path string, replace func(path string, n *segment.Filter) bool) segment.Filter {
	if replace(path, &f) {
		return segment.Filter{Status: "any"}
	}
	list := func(in []segment.Filter, name string) []segment.Filter {
		if in == nil {
			return nil
		}
		out := make([]segment.Filter, len(in))
		for i := range in {
			out[i] = rewrite(in[i], fmt.Sprintf("%s[%d]", join(path, name), i), replace)
		}
		return out
	}
	f.All, f.Any = list(f.All, "all"), list(f.Any, "any")
	if f.Not != nil {
		not := rewrite(*f.Not, join(path, "not"), replace)
		f.Not = &not
	}
	return f
}

// namesScenario reports whether a filter refers to a scenario.
func namesScenario(f segment.Filter) bool {
	found := false
	rewrite(f, "", func(_ string, n *segment.Filter) bool {
		found = found || n.Scenario != nil
		return false
	})
	return found
}
