package proxy

import "testing"

func TestMemoBudget(t *testing.T) {
	m := newMemo(10, func(s string) int { return len(s) })
	m.put("a", "12345")
	m.put("b", "1234")
	if _, ok := m.get("a"); !ok {
		t.Fatal("a forgotten within budget")
	}
	m.put("too big", "12345678901") // over the whole budget: not kept
	if _, ok := m.get("too big"); ok {
		t.Fatal("an entry over the budget was kept")
	}
	m.put("c", "123") // 5+4+3 > 10: everything before is forgotten
	if _, ok := m.get("a"); ok {
		t.Fatal("a kept past the budget")
	}
	if v, ok := m.get("c"); !ok || v != "123" {
		t.Fatalf("c = %q, %v", v, ok)
	}
	m.put("c", "999") // content is immutable: the first value stays
	if v, _ := m.get("c"); v != "123" {
		t.Fatalf("c replaced by %q", v)
	}
}
