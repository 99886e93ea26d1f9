// The checker: resolves names, infers and checks types, and rejects what would make an answer ambiguous —
// a non-exhaustive match, an unreachable clause, a decision that may not decide, month addition onto a day
// that may not exist, and 施行期間 that overlap or leave a gap. Its output is a typed tree for the compiler.
#include "ir.hpp"

#include "kyotaku/calendar.hpp"

#include <algorithm>
#include <bit>
#include <deque>
#include <map>
#include <set>

namespace kyotaku::check {

namespace {

using syntax::ParsedFile;
namespace x3 = boost::spirit::x3;

std::string type_name(Program const& p, Type t) {
    switch (t.kind) {
        case TypeKind::Bool: return "bool";
        case TypeKind::Int: return "int";
        case TypeKind::Date: return "date";
        case TypeKind::Month: return "month";
        case TypeKind::Text: return "text";
        case TypeKind::Enum: return p.enums[std::size_t(t.enum_id)].name;
        case TypeKind::EnumSet: return "set<" + p.enums[std::size_t(t.enum_id)].name + ">";
        case TypeKind::MonthSet: return "set<month>";
        case TypeKind::MonthRange: return "month .. month";
    }
    return "?";
}

// " (「x」のことですか?)" / " (did you mean 'x'?)" for the candidate nearest to `name` (nearest_name: at most one edit
// for short names, two otherwise), or empty strings when none is near.
template <typename Names>
std::pair<std::string, std::string> did_you_mean(std::string const& name, Names const& candidates) {
    std::string const best = nearest_name(name, std::vector<std::string>(std::begin(candidates), std::end(candidates)));
    if (best.empty()) return {};
    return {" (「" + best + "」のことですか?)", " (did you mean '" + best + "'?)"};
}

// The names a let's or decision's body refers to, in the order the checker meets them: identifiers in
// expressions (not match patterns), reason_of's argument and the {names} of because texts. Recursion follows the
// parser's nesting, which the grammar bounds (100 levels); runs of operators are walked in a loop.
void collect_refs(ast::Expr const& e, std::vector<std::string>& out);
void collect_refs(ast::Operand const& o, std::vector<std::string>& out) {
    struct V {
        std::vector<std::string>& out;
        void operator()(ast::Nil) const {}
        void operator()(ast::DateText const&) const {}
        void operator()(ast::Number const&) const {}
        void operator()(ast::Text const&) const {}
        void operator()(ast::Ident const& i) const { out.push_back(i.name); }
        void operator()(ast::Call const& c) const {
            for (auto const& a : c.args) collect_refs(a, out);
        }
        void operator()(ast::SetLit const& s) const {
            for (auto const& a : s.items) collect_refs(a, out);
        }
        void operator()(ast::Unary const& u) const { collect_refs(u.operand, out); }
        void operator()(ast::Match const& m) const {
            collect_refs(m.subject, out);
            for (auto const& a : m.arms) collect_refs(a.value, out);
        }
        void operator()(ast::IfExpr const& i) const {
            collect_refs(i.condition, out);
            collect_refs(i.then_value, out);
            collect_refs(i.else_value, out);
        }
        void operator()(ast::Expr const& e) const { collect_refs(e, out); }
    };
    boost::apply_visitor(V{out}, o);
}
void collect_refs(ast::Expr const& e, std::vector<std::string>& out) {
    collect_refs(e.first, out);
    for (auto const& op : e.rest) collect_refs(op.operand, out);
}
// The {names} of a because text.
void collect_text_refs(std::string const& s, std::vector<std::string>& out) {
    for (std::size_t open = s.find('{'); open != std::string::npos; open = s.find('{', open + 1)) {
        std::size_t close = s.find('}', open);
        if (close == std::string::npos) return;
        out.push_back(s.substr(open + 1, close - open - 1));
    }
}

// The depth of a checked expression tree, without recursion (the tree of `a + b + … + z` is as deep as it is long).
std::size_t node_depth(Node const& root) {
    std::size_t deepest = 0;
    std::vector<std::pair<Node const*, std::size_t>> todo{{&root, 1}};
    while (!todo.empty()) {
        auto [n, d] = todo.back();
        todo.pop_back();
        deepest = std::max(deepest, d);
        for (auto const& k : n->kids) todo.push_back({&k, d + 1});
    }
    return deepest;
}
constexpr std::size_t max_operations = 200;  // operators in one run (`a + b + …`)
constexpr std::size_t max_depth = 250;       // levels of one clause's expression tree

// The single operand of an expression without operators, looking through the nesting of precedence levels.
ast::Operand const* leaf(ast::Expr const& e) {
    ast::Expr const* cur = &e;
    for (;;) {
        if (!cur->rest.empty()) return nullptr;
        auto const* inner = boost::get<x3::forward_ast<ast::Expr>>(&cur->first);
        if (!inner) return &cur->first;
        cur = &inner->get();
    }
}
template <typename T>
T const* leaf_as(ast::Expr const& e) {
    auto const* o = leaf(e);
    if (!o) return nullptr;
    if constexpr (std::is_same_v<T, ast::Ident> || std::is_same_v<T, ast::Text> || std::is_same_v<T, ast::DateText> ||
                  std::is_same_v<T, ast::Number>)
        return boost::get<T>(o);
    else {
        auto const* f = boost::get<x3::forward_ast<T>>(o);
        return f ? &f->get() : nullptr;
    }
}

// An invariant is checked and compiled as a bool let: `invariant N: A implies B` is the let `N : bool = not (A) or
// (B)`, made here from the declaration's own nodes (their positions too, so that a diagnostic points into it).
ast::SlotDecl invariant_slot(ast::InvariantDecl const& inv) {
    auto at = [](auto& node, x3::position_tagged const& where) { static_cast<x3::position_tagged&>(node) = where; };
    ast::SlotDecl s;
    at(s, inv);
    s.kind = ast::SlotKind::Let;
    s.name = inv.name;
    s.label = inv.label;
    ast::TypeRef type;
    at(type, inv.name);
    type.name = ast::Ident("bool");
    at(type.name, inv.name);
    s.type = type;
    ast::Clause clause;
    at(clause, inv);
    if (!inv.consequence) {
        clause.value = inv.condition;
    } else {
        ast::Unary negated;
        at(negated, inv.condition);
        negated.op = ast::UnaryOp::Not;
        negated.operand = x3::forward_ast<ast::Expr>(inv.condition);
        ast::Operation either;
        at(either, *inv.consequence);
        either.op = ast::BinaryOp::Or;
        either.operand = x3::forward_ast<ast::Expr>(*inv.consequence);
        ast::Expr e;
        at(e, inv);
        e.first = x3::forward_ast<ast::Unary>(negated);
        e.rest.push_back(either);
        clause.value = e;
    }
    ast::Version version;
    at(version, inv);
    version.clauses.push_back(clause);
    s.versions.push_back(version);
    return s;
}

struct SlotDef {
    ast::SlotDecl const* decl;
    std::uint16_t file;
    enum class State { Unchecked, Checking, Done } state = State::Unchecked;
};

class Checker {
public:
    Checker(std::vector<std::unique_ptr<ParsedFile>> const& files, std::vector<Diagnostic>& diags)
        : files_(files), diags_(diags) {}

    std::optional<Checked> run();

private:
    std::vector<std::unique_ptr<ParsedFile>> const& files_;
    std::vector<Diagnostic>& diags_;
    Checked out_;
    Program& prog_ = out_.program;
    std::vector<SlotDef> slot_defs_;
    std::deque<ast::SlotDecl> invariant_decls_;     // the lets invariants are checked as (stable addresses)
    // their slots (and assumptions'): roots, like decisions, for unused warnings
    std::vector<std::uint32_t> invariant_slots_;
    ast::HorizonDecl const* horizon_decl_ = nullptr;
    std::map<std::string, std::vector<std::pair<int, int>>> enum_values_;  // value name → (enum, index)
    std::map<std::string, std::pair<ast::FixtureDecl const*, std::uint16_t>> fixtures_;
    std::map<std::string, int> fixture_index_;     // fixture name → Program::fixtures
    std::map<std::string, std::string> declared_;  // name → what it is (for duplicate detection)
    std::uint16_t file_ = 0;                       // file of the node being checked
    ast::AsofDecl const* asof_decl_ = nullptr;
    std::uint16_t asof_file_ = 0;
    bool failed_ = false;
    bool in_param_ = false;                       // checking a param's value: lets and decisions may not be used
    std::map<std::string_view, int> slot_index_;  // name → slot (Program::find_slot is a linear search)
    int slot_of(std::string_view name) const {
        auto it = slot_index_.find(name);
        return it == slot_index_.end() ? -1 : it->second;
    }

    ParsedFile const& file() const { return *files_[file_]; }
    Span span(x3::position_tagged const& n) const { return file().span_of(n, file_); }
    SourceLoc loc(x3::position_tagged const& n) const {
        auto [l, c] = file().line_col(span(n).begin);
        return SourceLoc{file_, std::uint32_t(l), std::uint32_t(c)};
    }
    void error(Span s, DiagnosticKind kind, std::string ja, std::string en) {
        diags_.push_back(syntax::make_diagnostic(*files_[s.file], s, kind, std::move(ja), std::move(en)));
    }
    void error(x3::position_tagged const& n, DiagnosticKind kind, std::string ja, std::string en) {
        error(span(n), kind, std::move(ja), std::move(en));
    }
    std::string tn(Type t) const { return type_name(prog_, t); }

    bool declare(ast::Ident const& name, std::string what) {
        auto [it, fresh] = declared_.emplace(name.name, what);
        if (!fresh) {
            error(name, DiagnosticKind::duplicate,
                  "「" + name.name + "」はすでに " + it->second + " として定義されています",
                  "'" + name.name + "' is already defined as a " + it->second);
            return false;
        }
        return true;
    }

    // Each function below reports what it rejects as a diagnostic and returns nullopt (or sets `failed`): the
    // checker goes on after an error, so that one run names every mistake of a rule set, not the first.
    //
    // `hint` is the type the context expects. It only tells a literal what it is (an unqualified enum value, an
    // empty set, a month written like a date); the caller still compares the result's type with what it wants.

    // The type a declaration names (bool, int, date, month, text, an enum, set<month>, set<enum>).
    std::optional<Type> resolve_type(ast::TypeRef const& t);
    // Declares every enum, fact, param, asof, let and decision of every file, so that uses may precede definitions.
    void collect();
    // Checks one let or decision whose references are checked already: its versions, clauses and result type.
    void check_slot(std::uint32_t s);
    // A run of one precedence level, folded to the left; comparisons and ranges do not chain.
    std::optional<Node> expr(ast::Expr const& e, std::optional<Type> hint);
    std::optional<Node> operand(ast::Operand const& o, std::optional<Type> hint);
    // A name: true/false, a let or decision, a fact, a param, or an enum value (the hint's enum first).
    std::optional<Node> ident(ast::Ident const& id, std::optional<Type> hint);
    // `lhs op operand`: which operators each pair of types allows, and which month additions need a rounding.
    std::optional<Node> binary(Node lhs, ast::Operation const& op);
    // A built-in function by its signatures, or reason_of(slot).
    std::optional<Node> call(ast::Call const& c);
    // A match over an enum: every value handled exactly once, no arm unreachable.
    std::optional<Node> match(ast::Match const& m, std::optional<Type> hint);
    // {a, b}: a set of one enum's values (a bitmask constant).
    std::optional<Node> set_literal(ast::SetLit const& s, std::optional<Type> hint);
    // A date (ISO or 和暦) or month literal that names a real day or month.
    std::optional<Node> date_literal(ast::DateText const& d);
    // (enum, value index) of `値` or `型名.値`; an unqualified value that several enums share needs `want_enum`.
    std::optional<std::pair<int, int>> enum_value(ast::Ident const& id, std::optional<int> want_enum);
    // A because text split at its {names}; adds the facts they read to `deps` when given.
    std::optional<std::vector<TextPiece>> text_pieces(ast::Text const& t, std::uint64_t* deps);
    // A test's given or expected value as a constant of the target's type (or null, or a text to contain).
    std::optional<TestValue> test_value(ast::Expr const& e, Type target, bool contains);
    // The rule-file tests and fixtures: names bound, values typed.
    void check_tests();
    // Every slot after the slots it references (post-order of the reference graph); cycles are reported here.
    std::vector<std::uint32_t> order_slots();
    // Refuses a checked tree deeper than max_depth: the compiler lowers it recursively, so its depth is bounded here.
    void check_depth(Node const& n, x3::position_tagged const& where, bool& failed);
    // Each slot's fact_deps (which facts it may read), in checking order: one pass.
    void compute_deps(std::vector<std::uint32_t> const& order);
    // Warns of lets, params and facts no answer depends on.
    void warn_unused();
    std::uint64_t deps_of(Node const& n) const;
    std::vector<std::string> names_of_kind(char kind) const;  // 'f' facts, 'p' params, 's' slots
};

std::optional<Checked> Checker::run() {
    std::size_t before = diags_.size();
    collect();
    out_.slots.resize(prog_.slots.size());
    // Each slot is checked after the slots it uses, in an order found first from the reference graph. Why an order
    // and not recursion at each reference: a let's type is inferred from its clauses, so a use can only be typed
    // once the let is checked; following the reference there and then would recurse once per let in a chain, a
    // depth the rule files choose (750 chained lets crashed the checker; 20,000 now check in a second). The same
    // order lets compute_deps find every slot's facts in one pass, and a cycle shows up as an edge back onto the
    // search stack, reported once with its whole chain instead of as a failure deep inside one let.
    auto const order = order_slots();
    for (auto s : order) check_slot(s);
    if (diags_.size() == before) check_tests();
    if (diags_.size() != before || failed_) return std::nullopt;
    compute_deps(order);
    warn_unused();
    for (std::uint16_t f = 0; f < files_.size(); ++f) prog_.files.push_back(files_[f]->name);
    return std::move(out_);
}

std::vector<std::uint32_t> Checker::order_slots() {
    std::size_t const n = slot_defs_.size();
    std::map<std::string_view, std::uint32_t> index;
    for (std::uint32_t s = 0; s < n; ++s) index.emplace(slot_defs_[s].decl->name.name, s);
    std::vector<std::vector<std::uint32_t>> uses(n);
    std::vector<std::string> refs;
    for (std::uint32_t s = 0; s < n; ++s) {
        refs.clear();
        for (auto const& v : slot_defs_[s].decl->versions)
            for (auto const& c : v.clauses) {
                if (c.condition) collect_refs(*c.condition, refs);
                collect_refs(c.value, refs);
                if (c.because) collect_text_refs(c.because->value, refs);
            }
        for (auto const& r : refs)
            if (auto it = index.find(r); it != index.end()) uses[s].push_back(it->second);
    }
    // Depth-first with an explicit stack: post-order is the checking order; an edge back onto the stack is a cycle,
    // reported once with its whole chain.
    enum : char { fresh, open, finished };
    std::vector<char> color(n, fresh);
    std::vector<std::uint32_t> order;
    std::vector<std::pair<std::uint32_t, std::size_t>> stack;
    for (std::uint32_t root = 0; root < n; ++root) {
        if (color[root] != fresh) continue;
        color[root] = open;
        stack.push_back({root, 0});
        while (!stack.empty()) {
            auto& [v, next] = stack.back();
            if (next < uses[v].size()) {
                std::uint32_t const w = uses[v][next++];
                if (color[w] == fresh) {
                    color[w] = open;
                    stack.push_back({w, 0});
                } else if (color[w] == open) {
                    std::size_t from = stack.size();
                    while (from > 0 && stack[from - 1].first != w) --from;
                    std::string chain_ja, chain_en;
                    for (std::size_t k = from - 1; k < stack.size(); ++k) {
                        auto const& name = slot_defs_[stack[k].first].decl->name.name;
                        chain_ja += "「" + name + "」→";
                        chain_en += name + " → ";
                    }
                    chain_ja += "「" + slot_defs_[w].decl->name.name + "」";
                    chain_en += slot_defs_[w].decl->name.name;
                    file_ = slot_defs_[w].file;
                    error(slot_defs_[w].decl->name, DiagnosticKind::cycle,
                          "循環参照: " + chain_ja + "。let や decision は、ほかを経由しても自分自身を使えません",
                          "cycle: " + chain_en + "; a let or decision cannot use itself, directly or through others");
                    for (std::size_t k = from - 1; k < stack.size(); ++k) {
                        std::uint32_t const c = stack[k].first;
                        slot_defs_[c].state = SlotDef::State::Done;
                        prog_.slots[c].type.kind = TypeKind::MonthRange;  // marks a failed slot
                    }
                    failed_ = true;
                }
            } else {
                color[v] = finished;
                order.push_back(v);
                stack.pop_back();
            }
        }
    }
    return order;
}

void Checker::check_depth(Node const& n, x3::position_tagged const& where, bool& failed) {
    if (node_depth(n) <= max_depth) return;
    error(where, DiagnosticKind::limit,
          "式が複雑すぎます (入れ子が" + std::to_string(max_depth) + "段を超えます)。let に分けてください",
          "expression too deep (more than " + std::to_string(max_depth) + " levels); split it into lets");
    failed = true;
}

std::vector<std::string> Checker::names_of_kind(char kind) const {
    std::vector<std::string> out;
    if (kind == 'f')
        for (auto const& f : prog_.facts) out.push_back(f.name);
    if (kind == 'p')
        for (auto const& p : prog_.params) out.push_back(p.name);
    if (kind == 's')
        for (auto const& s : prog_.slots) out.push_back(s.name);
    return out;
}

// Lets, params and facts on which no answer depends: nothing reachable from a decision (or an `export let`, which
// programs ask for by name, or an invariant or assumption, which prove and diff read) uses them, so changing them
// changes nothing.
// Warnings, by name.
void Checker::warn_unused() {
    std::size_t const n = prog_.slots.size();
    std::vector<char> used_slot(n, 0), used_fact(prog_.facts.size(), 0), used_param(prog_.params.size(), 0);
    std::vector<std::uint32_t> todo;
    for (std::uint32_t s = 0; s < n; ++s)
        if (prog_.slots[s].decision || slot_defs_[s].decl->kind == ast::SlotKind::ExportLet ||
            std::find(invariant_slots_.begin(), invariant_slots_.end(), s) != invariant_slots_.end()) {
            used_slot[s] = 1;
            todo.push_back(s);
        }
    std::vector<Node const*> nodes;
    auto piece = [&](TextPiece const& p) {
        if (p.kind == TextPiece::Kind::Fact) used_fact[p.id] = 1;
        if (p.kind == TextPiece::Kind::Param) used_param[p.id] = 1;
        if (p.kind == TextPiece::Kind::Slot && !used_slot[p.id]) used_slot[p.id] = 1, todo.push_back(p.id);
    };
    while (!todo.empty()) {
        std::uint32_t const s = todo.back();
        todo.pop_back();
        if (out_.slots[s].versioned && prog_.asof_fact >= 0) used_fact[std::size_t(prog_.asof_fact)] = 1;
        for (auto const& v : out_.slots[s].versions)
            for (auto const& c : v.clauses) {
                if (c.condition) nodes.push_back(&*c.condition);
                nodes.push_back(&c.value);
                for (auto const& p : c.because) piece(p);
            }
        while (!nodes.empty()) {
            Node const* node = nodes.back();
            nodes.pop_back();
            if (node->kind == Node::Kind::Fact) used_fact[std::size_t(node->value)] = 1;
            if (node->kind == Node::Kind::Param) used_param[std::size_t(node->value)] = 1;
            if ((node->kind == Node::Kind::Slot || node->kind == Node::Kind::Reason) &&
                !used_slot[std::size_t(node->value)]) {
                used_slot[std::size_t(node->value)] = 1;
                todo.push_back(std::uint32_t(node->value));
            }
            for (auto const& k : node->kids) nodes.push_back(&k);
        }
    }
    // In declaration order, file by file.
    for (std::uint16_t f = 0; f < files_.size(); ++f) {
        file_ = f;
        for (auto const& d : files_[f]->ast) {
            ast::Ident const* name = nullptr;
            std::string what_ja, what_en;
            if (auto const* fd = boost::get<ast::FactDecl>(&d)) {
                int i = prog_.find_fact(fd->name.name);
                if (i >= 0 && !used_fact[std::size_t(i)]) {
                    name = &fd->name;
                    what_ja = "fact「" + fd->name.name +
                              "」はどの decision にも使われていません (入力されても答えは変わりません)";
                    what_en = "fact '" + fd->name.name + "' is used by no decision: it changes no answer";
                }
            } else if (auto const* pd = boost::get<ast::ParamDecl>(&d)) {
                int i = prog_.find_param(pd->name.name);
                if (i >= 0 && !used_param[std::size_t(i)]) {
                    name = &pd->name;
                    what_ja = "param「" + pd->name.name +
                              "」はどの decision にも使われていません (値を変えても答えは変わりません)";
                    what_en = "param '" + pd->name.name + "' is used by no decision: changing it changes no answer";
                }
            } else if (auto const* sd = boost::get<ast::SlotDecl>(&d)) {
                int i = slot_of(sd->name.name);
                if (i >= 0 && !used_slot[std::size_t(i)]) {
                    name = &sd->name;
                    what_ja = "let「" + sd->name.name +
                              "」はどの decision にも使われていません (変えても答えは変わりません)。"
                              "要らなければ消し、プログラムが名前で問い合わせる let なら export let と書いてください";
                    what_en = "let '" + sd->name.name +
                              "' is used by no decision: changing it changes no answer; remove it, "
                              "or write `export let` if a program asks for it by name";
                }
            }
            if (!name) continue;
            error(*name, DiagnosticKind::unused, what_ja, what_en);
            diags_.back().severity = Severity::warning;
        }
    }
}

std::optional<Type> Checker::resolve_type(ast::TypeRef const& t) {
    std::string const& n = t.name.name;
    Type out;
    if (n == "bool") out.kind = TypeKind::Bool;
    else if (n == "int") out.kind = TypeKind::Int;
    else if (n == "date") out.kind = TypeKind::Date;
    else if (n == "month") out.kind = TypeKind::Month;
    else if (n == "text") out.kind = TypeKind::Text;
    else {
        auto it = std::find_if(prog_.enums.begin(), prog_.enums.end(), [&](auto const& e) { return e.name == n; });
        if (it == prog_.enums.end()) {
            std::vector<std::string> types{"bool", "int", "date", "month", "text"};
            for (auto const& e : prog_.enums) types.push_back(e.name);
            auto [hint_ja, hint_en] = did_you_mean(n, types);
            error(t.name, DiagnosticKind::unknown_name,
                  "型「" + n + "」は定義されていません (bool, int, date, month, text, または enum)" + hint_ja,
                  "unknown type '" + n + "' (bool, int, date, month, text, or an enum)" + hint_en);
            return std::nullopt;
        }
        out.kind = TypeKind::Enum;
        out.enum_id = std::int16_t(it - prog_.enums.begin());
    }
    if (t.is_set) {
        if (out.kind == TypeKind::Month) out.kind = TypeKind::MonthSet;
        else if (out.kind == TypeKind::Enum) out.kind = TypeKind::EnumSet;
        else {
            error(t, DiagnosticKind::type_mismatch, "set<…> にできるのは month か enum です",
                  "only month or an enum can form a set<…>");
            return std::nullopt;
        }
    }
    return out;
}

void Checker::collect() {
    // The built-in first-day rule of 民法140, so that rule files can state it as a parameter.
    prog_.enums.push_back(EnumInfo{"初日", {"初日不算入", "初日算入"}});
    enum_values_["初日不算入"].push_back({0, 0});
    enum_values_["初日算入"].push_back({0, 1});
    declared_["初日"] = "enum";

    // Enums first (types), then the rest in order.
    for (std::uint16_t f = 0; f < files_.size(); ++f) {
        file_ = f;
        for (auto const& d : files_[f]->ast) {
            auto const* e = boost::get<ast::EnumDecl>(&d);
            if (!e) continue;
            if (!declare(e->name, "enum")) continue;
            EnumInfo info{e->name.name, {}};
            int idx = int(prog_.enums.size());
            for (auto const& v : e->values) {
                if (std::find(info.values.begin(), info.values.end(), v.name) != info.values.end()) {
                    error(v, DiagnosticKind::duplicate, "値「" + v.name + "」が重複しています",
                          "duplicate enum value '" + v.name + "'");
                    continue;
                }
                enum_values_[v.name].push_back({idx, int(info.values.size())});
                info.values.push_back(v.name);
            }
            if (info.values.size() > 64)
                error(e->name, DiagnosticKind::limit, "enum の値は64個までです", "an enum may have at most 64 values");
            prog_.enums.push_back(std::move(info));
        }
    }
    for (std::uint16_t f = 0; f < files_.size(); ++f) {
        file_ = f;
        for (auto const& d : files_[f]->ast) {
            if (auto const* fd = boost::get<ast::FactDecl>(&d)) {
                if (!declare(fd->name, "fact")) continue;
                auto t = resolve_type(fd->type);
                if (!t) continue;
                if (t->kind == TypeKind::Text) {
                    error(fd->type, DiagnosticKind::type_mismatch, "fact に text 型は使えません",
                          "a fact cannot be of type text");
                    continue;
                }
                FactInfo info{fd->name.name, fd->label ? fd->label->value : std::string(), *t, false, 0, loc(fd->name)};
                if (fd->default_value) {
                    if (t->kind == TypeKind::MonthSet) {
                        error(*fd->default_value, DiagnosticKind::type_mismatch,
                              "set<month> の fact には既定値を置けません", "a set<month> fact cannot have a default");
                    } else if (auto v = expr(*fd->default_value, *t)) {
                        if (v->kind != Node::Kind::Const || !(v->type == *t))
                            error(*fd->default_value, DiagnosticKind::type_mismatch,
                                  "既定値は " + tn(*t) + " 型の定数でなければなりません",
                                  "the default must be a constant of type " + tn(*t));
                        else {
                            info.has_default = true;
                            info.default_value = v->value;
                        }
                    }
                }
                if (prog_.facts.size() == 64) {
                    error(fd->name, DiagnosticKind::limit, "fact は64個までです", "at most 64 facts");
                    continue;
                }
                prog_.facts.push_back(std::move(info));
            } else if (auto const* a = boost::get<ast::AsofDecl>(&d)) {
                if (prog_.asof_fact >= 0) {
                    error(a->fact, DiagnosticKind::duplicate, "asof は一度だけ宣言できます",
                          "asof may be declared only once");
                    continue;
                }
                prog_.asof_fact = -2 - int(f);  // resolved below, once all facts are known
                asof_decl_ = a;
                asof_file_ = f;
            } else if (auto const* s = boost::get<ast::SlotDecl>(&d)) {
                bool const decision = s->kind == ast::SlotKind::Decision;
                if (!declare(s->name, decision ? "decision" : "let")) continue;
                slot_defs_.push_back(SlotDef{s, f});
                SlotInfo info;
                info.name = s->name.name;
                if (s->label) info.label = s->label->value;
                info.decision = decision;
                info.exported = s->kind == ast::SlotKind::ExportLet;
                info.loc = loc(s->name);
                info.source = files_[f]->line_text(int(info.loc.line));
                slot_index_.emplace(s->name.name, int(prog_.slots.size()));
                prog_.slots.push_back(std::move(info));
                if (prog_.slots.back().decision) prog_.outputs.push_back(std::uint32_t(prog_.slots.size() - 1));
            } else if (auto const* inv = boost::get<ast::InvariantDecl>(&d)) {
                if (!declare(inv->name, inv->kind == ast::PropertyKind::Invariant ? "invariant" : "assume")) continue;
                slot_defs_.push_back(SlotDef{&invariant_decls_.emplace_back(invariant_slot(*inv)), f});
                SlotInfo info;
                info.name = inv->name.name;
                if (inv->label) info.label = inv->label->value;
                info.type = Type{TypeKind::Bool, -1};
                info.loc = loc(inv->name);
                info.source = files_[f]->line_text(int(info.loc.line));
                auto const slot = std::uint32_t(prog_.slots.size());
                slot_index_.emplace(inv->name.name, int(slot));
                (inv->kind == ast::PropertyKind::Invariant ? prog_.invariants : prog_.assumptions)
                    .push_back(InvariantInfo{info.name, info.label, slot, info.loc, info.source});
                prog_.slots.push_back(std::move(info));
                invariant_slots_.push_back(slot);
            } else if (auto const* h = boost::get<ast::HorizonDecl>(&d)) {
                if (horizon_decl_) {
                    error(h->date, DiagnosticKind::duplicate, "horizon は一度だけ宣言できます",
                          "horizon may be declared only once");
                    continue;
                }
                horizon_decl_ = h;
                if (auto day = date_literal(h->date); day && day->type.kind == TypeKind::Date)
                    prog_.horizon = day->value;
                else if (day)
                    error(h->date, DiagnosticKind::type_mismatch, "horizon は日付です (例: horizon 2030-12-31)",
                          "horizon is a date (horizon 2030-12-31)");
            } else if (auto const* fx = boost::get<ast::FixtureDecl>(&d)) {
                if (!fixtures_.emplace(fx->name.name, std::make_pair(fx, f)).second)
                    error(fx->name, DiagnosticKind::duplicate, "fixture「" + fx->name.name + "」が重複しています",
                          "duplicate fixture '" + fx->name.name + "'");
            }
        }
    }
    // Params after facts so that their values may be checked; they may not refer to facts.
    for (std::uint16_t f = 0; f < files_.size(); ++f) {
        file_ = f;
        for (auto const& d : files_[f]->ast) {
            auto const* pd = boost::get<ast::ParamDecl>(&d);
            if (!pd || !declare(pd->name, "param")) continue;
            std::optional<Type> t;
            if (pd->type && !(t = resolve_type(*pd->type))) continue;
            in_param_ = true;
            auto v = expr(pd->value, t);
            in_param_ = false;
            if (!v) continue;
            if (v->kind != Node::Kind::Const) {
                error(pd->value, DiagnosticKind::type_mismatch, "param の値は定数でなければなりません",
                      "a param's value must be a constant");
                continue;
            }
            if (t && !(v->type == *t)) {
                error(pd->value, DiagnosticKind::type_mismatch,
                      "param「" + pd->name.name + "」は " + tn(*t) + " 型ですが値は " + tn(v->type) + " 型です",
                      "param '" + pd->name.name + "' is " + tn(*t) + " but its value is " + tn(v->type));
                continue;
            }
            prog_.params.push_back(ParamInfo{pd->name.name, v->type, v->value, loc(pd->name)});
        }
    }
    if (asof_decl_) {
        file_ = asof_file_;
        int f = prog_.find_fact(asof_decl_->fact.name);
        if (f < 0) {
            prog_.asof_fact = -1;
            auto [hint_ja, hint_en] = did_you_mean(asof_decl_->fact.name, names_of_kind('f'));
            error(asof_decl_->fact, DiagnosticKind::unknown_name,
                  "asof の fact「" + asof_decl_->fact.name + "」が定義されていません" + hint_ja,
                  "asof names an unknown fact '" + asof_decl_->fact.name + "'" + hint_en);
        } else if (prog_.facts[std::size_t(f)].type.kind != TypeKind::Date) {
            prog_.asof_fact = -1;
            error(asof_decl_->fact, DiagnosticKind::type_mismatch, "asof の fact は date 型でなければなりません",
                  "the asof fact must be a date");
        } else {
            prog_.asof_fact = f;
        }
    }
}

std::optional<std::pair<int, int>> Checker::enum_value(ast::Ident const& id, std::optional<int> want_enum) {
    auto const& name = id.name;
    auto dot = name.find('.');
    if (dot != std::string::npos) {
        std::string en = name.substr(0, dot), vn = name.substr(dot + 1);
        for (std::size_t e = 0; e < prog_.enums.size(); ++e) {
            if (prog_.enums[e].name != en) continue;
            int v = prog_.find_enum_value(int(e), vn);
            if (v >= 0) return std::make_pair(int(e), v);
        }
        return std::nullopt;
    }
    auto it = enum_values_.find(name);
    if (it == enum_values_.end()) return std::nullopt;
    if (want_enum)
        for (auto const& c : it->second)
            if (c.first == *want_enum) return c;
    if (it->second.size() == 1) return it->second.front();
    error(id, DiagnosticKind::type_mismatch,
          "「" + name + "」は複数の enum にあります。型名を付けて書いてください (例: " +
              prog_.enums[std::size_t(it->second[0].first)].name + "." + name + ")",
          "'" + name + "' is a value of several enums; qualify it (e.g. " +
              prog_.enums[std::size_t(it->second[0].first)].name + "." + name + ")");
    return std::pair{-2, -2};
}

std::optional<Node> Checker::ident(ast::Ident const& id, std::optional<Type> hint) {
    Node n;
    n.span = span(id);
    if (id.name == "true" || id.name == "false") {
        n.type.kind = TypeKind::Bool;
        n.value = id.name == "true";
        return n;
    }
    if (int s = slot_of(id.name); s >= 0) {
        if (in_param_) {
            error(id, DiagnosticKind::type_mismatch,
                  "param の値は定数でなければなりません (「" + id.name + "」は " +
                      (prog_.slots[std::size_t(s)].decision ? "decision" : "let") + " です)",
                  "a param's value must be a constant ('" + id.name + "' is a let or decision)");
            return std::nullopt;
        }
        check_slot(std::uint32_t(s));
        auto const& info = prog_.slots[std::size_t(s)];
        if (slot_defs_[std::size_t(s)].state != SlotDef::State::Done) return std::nullopt;
        if (info.type.kind == TypeKind::MonthRange) return std::nullopt;
        n.kind = Node::Kind::Slot;
        n.value = s;
        n.type = info.type;
        return n;
    }
    if (int f = prog_.find_fact(id.name); f >= 0) {
        n.kind = Node::Kind::Fact;
        n.value = f;
        n.type = prog_.facts[std::size_t(f)].type;
        return n;
    }
    if (int p = prog_.find_param(id.name); p >= 0) {
        n.kind = Node::Kind::Param;
        n.value = p;
        n.type = prog_.params[std::size_t(p)].type;
        return n;
    }
    std::optional<int> want;
    if (hint && (hint->kind == TypeKind::Enum || hint->kind == TypeKind::EnumSet)) want = hint->enum_id;
    if (auto ev = enum_value(id, want)) {
        if (ev->first < 0) return std::nullopt;
        n.type = Type{TypeKind::Enum, std::int16_t(ev->first)};
        n.value = ev->second;
        return n;
    }
    // Unknown: suggest the nearest declared name (or, for 型名.値, the nearest qualified value).
    std::vector<std::string> names;
    for (auto const& [k, v] : declared_) names.push_back(k);
    for (auto const& [k, v] : enum_values_) names.push_back(k);
    if (id.name.find('.') != std::string::npos)
        for (auto const& e : prog_.enums)
            for (auto const& v : e.values) names.push_back(e.name + "." + v);
    auto [hint_ja, hint_en] = did_you_mean(id.name, names);
    error(id, DiagnosticKind::unknown_name, "「" + id.name + "」は定義されていません" + hint_ja,
          "unknown name '" + id.name + "'" + hint_en);
    return std::nullopt;
}

std::optional<Node> Checker::date_literal(ast::DateText const& d) {
    Node n;
    n.span = span(d);
    std::string const& t = d.text;
    bool has_day = std::count(t.begin(), t.end(), '-') == 2 || t.find("日") != std::string::npos ||
                   std::count(t.begin(), t.end(), '.') == 2;
    if (has_day) {
        auto r = parse_date(t);
        if (!r.date) {
            error(d, DiagnosticKind::invalid_date, r.message.ja, r.message.en);
            return std::nullopt;
        }
        n.type.kind = TypeKind::Date;
        n.value = r.date->days();
    } else {
        auto r = parse_month(t);
        if (!r.month) {
            error(d, DiagnosticKind::invalid_date, r.message.ja, r.message.en);
            return std::nullopt;
        }
        n.type.kind = TypeKind::Month;
        n.value = r.month->index();
    }
    return n;
}

std::optional<Node> Checker::set_literal(ast::SetLit const& s, std::optional<Type> hint) {
    Node n;
    n.span = span(s);
    std::optional<int> want;
    if (hint && (hint->kind == TypeKind::EnumSet || hint->kind == TypeKind::Enum)) want = hint->enum_id;
    std::uint64_t mask = 0;
    for (auto const& item : s.items) {
        auto const* id = leaf_as<ast::Ident>(item);
        std::optional<std::pair<int, int>> ev = id ? enum_value(*id, want) : std::nullopt;
        if (!ev) {
            if (id) {  // a name that is no enum value: most often a misspelt one
                std::vector<std::string> values;
                if (want) values = prog_.enums[std::size_t(*want)].values;
                else
                    for (auto const& [k, v] : enum_values_) values.push_back(k);
                auto [hint_ja, hint_en] = did_you_mean(id->name, values);
                error(
                    item, DiagnosticKind::unknown_name,
                    "「" + id->name + "」は enum の値ではありません。集合 {…} に書けるのは enum の値だけです" + hint_ja,
                    "'" + id->name + "' is not an enum value; a set {…} may only list enum values" + hint_en);
                return std::nullopt;
            }
            error(item, DiagnosticKind::type_mismatch, "集合 {…} に書けるのは enum の値だけです",
                  "a set {…} may only list enum values");
            return std::nullopt;
        }
        if (ev->first < 0) return std::nullopt;
        if (want && *want != ev->first) {
            auto [hint_ja, hint_en] = did_you_mean(id->name, prog_.enums[std::size_t(*want)].values);
            error(item, DiagnosticKind::type_mismatch,
                  "「" + id->name + "」は " + prog_.enums[std::size_t(*want)].name + " の値ではありません" + hint_ja,
                  "'" + id->name + "' is not a value of " + prog_.enums[std::size_t(*want)].name + hint_en);
            return std::nullopt;
        }
        want = ev->first;
        mask |= std::uint64_t(1) << ev->second;
    }
    if (!want) {
        error(s, DiagnosticKind::type_mismatch, "空の集合 {} の型が分かりません",
              "cannot tell the type of an empty set {}");
        return std::nullopt;
    }
    n.type = Type{TypeKind::EnumSet, std::int16_t(*want)};
    n.value = std::int64_t(mask);
    return n;
}

std::optional<Node> Checker::call(ast::Call const& c) {
    Node n;
    n.span = span(c);
    n.kind = Node::Kind::Call;
    std::string const& fn = c.function.name;
    if (fn == "reason_of") {
        auto const* id = c.args.size() == 1 ? leaf_as<ast::Ident>(c.args[0]) : nullptr;
        int s = id ? slot_of(id->name) : -1;
        if (s < 0) {
            auto [hint_ja, hint_en] =
                id ? did_you_mean(id->name, names_of_kind('s')) : std::pair<std::string, std::string>{};
            error(c, id ? DiagnosticKind::unknown_name : DiagnosticKind::type_mismatch,
                  "reason_of には let か decision の名前を一つ渡します" + hint_ja,
                  "reason_of takes the name of one let or decision" + hint_en);
            return std::nullopt;
        }
        check_slot(std::uint32_t(s));
        n.kind = Node::Kind::Reason;
        n.value = s;
        n.type.kind = TypeKind::Text;
        return n;
    }
    struct Sig {
        char const* name;
        Builtin b;
        std::vector<TypeKind> args;
        TypeKind result;
    };
    static std::vector<Sig> const sigs{
        {"period_start", Builtin::PeriodStart, {TypeKind::Date, TypeKind::Enum}, TypeKind::Date},
        {"period_end", Builtin::PeriodEnd, {TypeKind::Date, TypeKind::Int, TypeKind::Enum}, TypeKind::Date},
        {"month_end", Builtin::MonthEnd, {TypeKind::Date}, TypeKind::Date},
        {"month_end", Builtin::MonthEndOfMonth, {TypeKind::Month}, TypeKind::Date},
        {"month_of", Builtin::MonthOf, {TypeKind::Date}, TypeKind::Month},
        {"all_in", Builtin::AllIn, {TypeKind::MonthRange, TypeKind::MonthSet}, TypeKind::Bool},
        {"first_missing", Builtin::FirstMissing, {TypeKind::MonthRange, TypeKind::MonthSet}, TypeKind::Month},
    };
    std::vector<Node> args;
    for (auto const& a : c.args) {
        std::optional<Type> h;
        if (args.size() + 1 == c.args.size() && (fn == "period_start" || fn == "period_end"))
            h = Type{TypeKind::Enum, 0};
        auto v = expr(a, h);
        if (!v) return std::nullopt;
        args.push_back(std::move(*v));
    }
    bool known = false;
    for (auto const& s : sigs) {
        if (fn != s.name) continue;
        known = true;
        if (s.args.size() != args.size()) continue;
        bool ok = true;
        for (std::size_t i = 0; i < args.size(); ++i) {
            ok = ok && args[i].type.kind == s.args[i];
            if (s.args[i] == TypeKind::Enum) ok = ok && args[i].type.enum_id == 0;
        }
        if (!ok) continue;
        if (s.b == Builtin::AllIn || s.b == Builtin::FirstMissing) {
            if (args[1].kind != Node::Kind::Fact) {
                error(c.args[1], DiagnosticKind::type_mismatch, "月の集合は fact でなければなりません",
                      "the month set must be a fact");
                return std::nullopt;
            }
        }
        n.builtin = s.b;
        n.type.kind = s.result;
        n.kids = std::move(args);
        return n;
    }
    if (!known) {
        auto [hint_ja, hint_en] =
            did_you_mean(fn, std::vector<std::string>{"period_start", "period_end", "month_end", "month_of", "all_in",
                                                      "first_missing", "reason_of"});
        error(c.function, DiagnosticKind::unknown_name,
              "関数「" + fn +
                  "」はありません (period_start, period_end, month_end, month_of, all_in, first_missing, reason_of)" +
                  hint_ja,
              "unknown function '" + fn +
                  "' (period_start, period_end, month_end, month_of, all_in, first_missing, reason_of)" + hint_en);
        return std::nullopt;
    }
    std::string got;
    for (auto const& a : args) got += (got.empty() ? "" : ", ") + tn(a.type);
    std::string want;
    for (auto const& s : sigs) {
        if (fn != s.name) continue;
        std::string one;
        for (auto k : s.args)
            one += (one.empty() ? "" : ", ") + (k == TypeKind::Enum ? std::string("初日") : tn(Type{k, -1}));
        want += (want.empty() ? "" : " / ") + std::string(fn) + "(" + one + ")";
    }
    error(c, DiagnosticKind::type_mismatch,
          fn + " の引数の型が合いません: (" + got + ") が渡されましたが " + want + " です",
          "wrong argument types for " + fn + ": got (" + got + "), expected " + want);
    return std::nullopt;
}

std::optional<Node> Checker::match(ast::Match const& m, std::optional<Type> hint) {
    auto subject = expr(m.subject, std::nullopt);
    if (!subject) return std::nullopt;
    if (subject->type.kind != TypeKind::Enum) {
        error(m.subject, DiagnosticKind::type_mismatch,
              "match できるのは enum の値だけです (" + tn(subject->type) + " が渡されました)",
              "match takes an enum value (got " + tn(subject->type) + ")");
        return std::nullopt;
    }
    // Exhaustiveness as a bitmask: an enum has at most 64 values (collect() refuses more), so value i is bit i and
    // a set of values is one word. `all` is every value; `covered` the values earlier arms took. An arm's mask is
    // the values it takes first (`_` takes all & ~covered, the rest); a pattern whose bit is already covered, or an
    // arm whose mask is empty, can never be chosen (unreachable). The match is exhaustive iff covered == all. The
    // masks go to the compiler as they are (arm_masks): the program tests the subject's bit against each.
    auto const& en = prog_.enums[std::size_t(subject->type.enum_id)];
    std::uint64_t all = en.values.size() == 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << en.values.size()) - 1;
    Node n;
    n.kind = Node::Kind::Match;
    n.span = span(m);
    n.kids.push_back(std::move(*subject));
    std::uint64_t covered = 0;
    std::optional<Type> result = hint;
    bool failed = false;
    for (auto const& arm : m.arms) {
        std::uint64_t mask = 0;
        for (auto const& p : arm.patterns) {
            if (p.name == "_") {
                mask |= all & ~covered;
                continue;
            }
            auto ev = enum_value(p, subject->type.enum_id);
            if (!ev || ev->first != subject->type.enum_id) {
                auto [hint_ja, hint_en] = did_you_mean(p.name, en.values);
                error(p, DiagnosticKind::type_mismatch,
                      "「" + p.name + "」は " + en.name + " の値ではありません" + hint_ja,
                      "'" + p.name + "' is not a value of " + en.name + hint_en);
                failed = true;
                continue;
            }
            std::uint64_t bit = std::uint64_t(1) << ev->second;
            if ((covered | mask) & bit) {
                error(p, DiagnosticKind::unreachable,
                      "「" + p.name + "」は前の枝ですでに扱われています (この枝には来ません)",
                      "'" + p.name + "' is already handled by an earlier arm: unreachable");
                failed = true;
            }
            mask |= bit;
        }
        if (mask == 0 && !failed) {
            error(arm, DiagnosticKind::unreachable, "この枝には来ません (すべての値が前の枝で扱われています)",
                  "unreachable arm: every value is handled by an earlier arm");
            failed = true;
        }
        covered |= mask;
        auto v = expr(arm.value, result);
        if (!v) {
            failed = true;
            continue;
        }
        if (result && !(v->type == *result)) {
            error(arm.value, DiagnosticKind::type_mismatch,
                  "match の枝の型が揃っていません: " + tn(*result) + " と " + tn(v->type),
                  "match arms differ in type: " + tn(*result) + " and " + tn(v->type));
            failed = true;
            continue;
        }
        result = v->type;
        n.arm_masks.push_back(mask);
        n.kids.push_back(std::move(*v));
    }
    if (failed) return std::nullopt;
    if (covered != all) {
        std::string missing;
        for (std::size_t i = 0; i < en.values.size(); ++i)
            if (!((covered >> i) & 1u)) missing += (missing.empty() ? "" : ", ") + en.values[i];
        error(m, DiagnosticKind::non_exhaustive,
              en.name + " の値 " + missing + " が扱われていません (枝を足すか _ を使ってください)",
              "non-exhaustive match on " + en.name + ": " + missing + " not handled (add an arm or _)");
        return std::nullopt;
    }
    n.type = *result;
    return n;
}

std::optional<Node> Checker::operand(ast::Operand const& o, std::optional<Type> hint) {
    struct V {
        Checker& c;
        std::optional<Type> hint;
        std::optional<Node> operator()(ast::Nil) const { return std::nullopt; }
        std::optional<Node> operator()(ast::DateText const& d) const { return c.date_literal(d); }
        std::optional<Node> operator()(ast::Number const& x) const {
            Node n;
            n.span = c.span(x);
            n.type.kind = TypeKind::Int;
            n.value = x.value;
            return n;
        }
        std::optional<Node> operator()(ast::Text const& t) const {
            Node n;
            n.span = c.span(t);
            n.type.kind = TypeKind::Text;
            c.prog_.strings.push_back(t.value);
            n.value = -std::int64_t(c.prog_.strings.size());
            return n;
        }
        std::optional<Node> operator()(ast::Call const& x) const { return c.call(x); }
        std::optional<Node> operator()(ast::Ident const& x) const { return c.ident(x, hint); }
        std::optional<Node> operator()(ast::SetLit const& x) const { return c.set_literal(x, hint); }
        std::optional<Node> operator()(ast::Unary const& u) const {
            bool is_not = u.op == ast::UnaryOp::Not;
            auto inner = c.operand(u.operand, is_not ? Type{TypeKind::Bool, -1} : Type{TypeKind::Int, -1});
            if (!inner) return std::nullopt;
            TypeKind want = is_not ? TypeKind::Bool : TypeKind::Int;
            if (inner->type.kind != want) {
                c.error(
                    u, DiagnosticKind::type_mismatch,
                    std::string(is_not ? "not には bool" : "符号 - には int") + " が必要ですが " + c.tn(inner->type) +
                        " です",
                    std::string(is_not ? "not takes a bool" : "unary - takes an int") + ", got " + c.tn(inner->type));
                return std::nullopt;
            }
            if (inner->kind == Node::Kind::Const) {
                inner->value = is_not ? !inner->value : -inner->value;
                inner->span = c.span(u);
                return inner;
            }
            Node n;
            n.kind = is_not ? Node::Kind::Not : Node::Kind::Neg;
            n.type = inner->type;
            n.span = c.span(u);
            n.kids.push_back(std::move(*inner));
            return n;
        }
        std::optional<Node> operator()(ast::Match const& m) const { return c.match(m, hint); }
        std::optional<Node> operator()(ast::IfExpr const& i) const {
            auto cond = c.expr(i.condition, Type{TypeKind::Bool, -1});
            auto a = c.expr(i.then_value, hint);
            auto b = c.expr(i.else_value, a ? std::optional<Type>(a->type) : hint);
            if (!cond || !a || !b) return std::nullopt;
            if (cond->type.kind != TypeKind::Bool) {
                c.error(i.condition, DiagnosticKind::type_mismatch, "if の条件は bool でなければなりません",
                        "an if condition must be a bool");
                return std::nullopt;
            }
            if (!(a->type == b->type)) {
                c.error(i, DiagnosticKind::type_mismatch,
                        "then と else の型が違います: " + c.tn(a->type) + " と " + c.tn(b->type),
                        "then and else differ in type: " + c.tn(a->type) + " and " + c.tn(b->type));
                return std::nullopt;
            }
            Node n;
            n.kind = Node::Kind::If;
            n.type = a->type;
            n.span = c.span(i);
            n.kids = {std::move(*cond), std::move(*a), std::move(*b)};
            return n;
        }
        std::optional<Node> operator()(ast::Expr const& e) const { return c.expr(e, hint); }
    };
    return boost::apply_visitor(V{*this, hint}, o);
}

std::optional<Node> Checker::expr(ast::Expr const& e, std::optional<Type> hint) {
    if (e.rest.size() > max_operations) {
        error(e, DiagnosticKind::limit,
              "一つの式に演算子が多すぎます (" + std::to_string(max_operations) + "個まで)。let に分けてください",
              "too many operators in one expression (" + std::to_string(max_operations) +
                  " at most); split it into lets");
        return std::nullopt;
    }
    std::optional<Type> first_hint = e.rest.empty() ? hint : std::nullopt;
    auto cur = operand(e.first, first_hint);
    if (!cur) return std::nullopt;
    for (auto const& op : e.rest) {
        auto next = binary(std::move(*cur), op);
        if (!next) return std::nullopt;
        cur = std::move(next);
        cur->span.begin = span(e).begin;
        cur->span.end = span(op).end;
    }
    if (e.rest.size() > 1) {
        bool comparison = false;
        for (auto const& op : e.rest) comparison = comparison || ast::is_comparison(op.op);
        if (comparison) {
            error(e, DiagnosticKind::type_mismatch,
                  "比較や範囲 (..) は一つの式に一つだけです。括弧か and を使ってください",
                  "comparisons and ranges do not chain; use parentheses or and");
            return std::nullopt;
        }
    }
    return cur;
}

std::optional<Node> Checker::binary(Node lhs, ast::Operation const& o) {
    using enum ast::BinaryOp;
    ast::BinaryOp const op = o.op;
    std::string const spelled(ast::spelling(op));
    // The left side's type tells the right side what an unqualified enum value or an empty set means.
    std::optional<Type> hint;
    if (op == Eq || op == Ne) hint = lhs.type;
    if ((op == In || op == NotIn) && lhs.type.kind == TypeKind::Enum) hint = Type{TypeKind::EnumSet, lhs.type.enum_id};
    if (op == And || op == Or) hint = Type{TypeKind::Bool, -1};
    auto rhs_opt = operand(o.operand, hint);
    if (!rhs_opt) return std::nullopt;
    Node rhs = std::move(*rhs_opt);
    Node n;
    n.span = span(o);
    auto mismatch = [&](std::string what_ja, std::string what_en) -> std::optional<Node> {
        Span s{lhs.span.file, lhs.span.begin, span(o).end};
        error(s, DiagnosticKind::type_mismatch, what_ja + ": " + tn(lhs.type) + " " + spelled + " " + tn(rhs.type),
              what_en + ": " + tn(lhs.type) + " " + spelled + " " + tn(rhs.type));
        return std::nullopt;
    };
    auto make = [&](BinOp b, TypeKind result) {
        n.kind = Node::Kind::Binary;
        n.op = b;
        n.type = Type{result, -1};
        n.kids.push_back(std::move(lhs));
        n.kids.push_back(std::move(rhs));
        return std::optional<Node>(std::move(n));
    };
    TypeKind lk = lhs.type.kind, rk = rhs.type.kind;
    if (o.unit != ast::Unit::None && op != Add && op != Sub)
        return mismatch("単位はここでは使えません", "a unit is not allowed here");
    if (op == And || op == Or) {
        if (lk != TypeKind::Bool || rk != TypeKind::Bool)
            return mismatch("and / or には bool が必要です", "and / or take bools");
        n.kind = op == And ? Node::Kind::And : Node::Kind::Or;
        n.type.kind = TypeKind::Bool;
        n.kids.push_back(std::move(lhs));
        n.kids.push_back(std::move(rhs));
        return n;
    }
    if (op == Eq || op == Ne) {
        if (!(lhs.type == rhs.type) || lk == TypeKind::MonthSet || lk == TypeKind::MonthRange || lk == TypeKind::Text)
            return mismatch("比較できない型です", "cannot compare these types");
        return make(op == Eq ? BinOp::Eq : BinOp::Ne, TypeKind::Bool);
    }
    if (op == Lt || op == Le || op == Gt || op == Ge) {
        if (!(lhs.type == rhs.type) || (lk != TypeKind::Int && lk != TypeKind::Date && lk != TypeKind::Month))
            return mismatch("大小を比べられない型です", "cannot order these types");
        return make(op == Lt ? BinOp::Lt : op == Le ? BinOp::Le : op == Gt ? BinOp::Gt : BinOp::Ge, TypeKind::Bool);
    }
    if (op == In || op == NotIn) {
        bool neg = op == NotIn;
        if (lk == TypeKind::Enum && rk == TypeKind::EnumSet && lhs.type.enum_id == rhs.type.enum_id)
            return make(neg ? BinOp::EnumNotIn : BinOp::EnumIn, TypeKind::Bool);
        if (lk == TypeKind::Month && rk == TypeKind::MonthSet) {
            if (rhs.kind != Node::Kind::Fact)
                return mismatch("月の集合は fact でなければなりません", "the month set must be a fact");
            return make(neg ? BinOp::MonthNotIn : BinOp::MonthIn, TypeKind::Bool);
        }
        if (lk == TypeKind::Month && rk == TypeKind::MonthRange)
            return make(neg ? BinOp::RangeNotIn : BinOp::RangeIn, TypeKind::Bool);
        return mismatch("in の左は要素、右はその集合でなければなりません", "in takes an element and a set of its type");
    }
    if (op == Range) {
        if (lk != TypeKind::Month || rk != TypeKind::Month)
            return mismatch("範囲 .. は month と month の間に書きます", "a range .. joins two months");
        n.kind = Node::Kind::Range;
        n.type.kind = TypeKind::MonthRange;
        n.kids.push_back(std::move(lhs));
        n.kids.push_back(std::move(rhs));
        return n;
    }
    if (op == Mul) {
        if (lk != TypeKind::Int || rk != TypeKind::Int) return mismatch("* には int が必要です", "* takes ints");
        return make(BinOp::Mul, TypeKind::Int);
    }
    // + and -
    bool const plus = op == Add;
    bool const no_unit = o.unit == ast::Unit::None;
    if (lk == TypeKind::Int && rk == TypeKind::Int && no_unit)
        return make(plus ? BinOp::Add : BinOp::Sub, TypeKind::Int);
    if (lk == TypeKind::Date && rk == TypeKind::Date && !plus && no_unit) return make(BinOp::Sub, TypeKind::Int);
    if (lk == TypeKind::Month && rk == TypeKind::Month && !plus && no_unit) return make(BinOp::Sub, TypeKind::Int);
    if (lk == TypeKind::Month && rk == TypeKind::Int && (no_unit || o.unit == ast::Unit::Months))
        return make(plus ? BinOp::Add : BinOp::Sub, TypeKind::Month);
    if (lk == TypeKind::Date && rk == TypeKind::Int) {
        if (no_unit)
            return mismatch("日付に数を足すときは単位 (days / months) が必要です",
                            "adding a number to a date needs a unit (days / months)");
        if (o.unit == ast::Unit::Days) return make(plus ? BinOp::Add : BinOp::Sub, TypeKind::Date);
        // Months onto a date: the day may not exist in the target month (2024-01-31 + 1 month).
        if (o.rounding == ast::Rounding::None) {
            bool safe = lhs.kind == Node::Kind::Const && Date::from_days(lhs.value).day() <= 28;
            if (!safe) {
                std::int64_t k = rhs.kind == Node::Kind::Const ? rhs.value : 1;
                if (!plus) k = -k;
                // A counter-example: the first day of 2024 for which the addition lands on a missing day.
                std::string example_ja = "", example_en = "";
                for (std::int64_t d = Date::from_ymd(2024, 1, 1)->days(); d < Date::from_ymd(2028, 1, 1)->days(); ++d) {
                    Date day = Date::from_days(d);
                    if (month_addition_ambiguous(day, k)) {
                        Month target = Month::of(day).plus(k);
                        std::string missing = target.iso() + "-" + std::to_string(day.day());
                        example_ja = "例: " + day.iso() + " " + (plus ? "+ " : "- ") + std::to_string(k < 0 ? -k : k) +
                                     " か月 → " + missing + " は存在しません";
                        example_en = "e.g. " + day.iso() + (plus ? " + " : " - ") + std::to_string(k < 0 ? -k : k) +
                                     " months → " + missing + " does not exist";
                        break;
                    }
                }
                Span s{lhs.span.file, lhs.span.begin, span(o).end};
                error(s, DiagnosticKind::ambiguous_month_arithmetic,
                      "月の加算で存在しない日になることがあります。" + example_ja +
                          "。round clamp (月末に止める) か round up (翌月1日に繰り上げる) "
                          "を書いてください。期間の満了日なら period_end を使います",
                      "month addition may land on a day that does not exist; " + example_en +
                          ". State `round clamp` (stop at the month end) or `round up` (the 1st of the next month); "
                          "for a statutory period use period_end");
                return std::nullopt;
            }
        }
        n.rounding = o.rounding == ast::Rounding::Up ? 1 : 0;
        if (!plus) {
            Node neg;
            neg.kind = Node::Kind::Neg;
            neg.type.kind = TypeKind::Int;
            neg.span = rhs.span;
            neg.kids.push_back(std::move(rhs));
            rhs = std::move(neg);
        }
        return make(BinOp::AddMonths, TypeKind::Date);
    }
    return mismatch("この組み合わせでは足し引きできません", "cannot add or subtract these");
}

std::optional<std::vector<TextPiece>> Checker::text_pieces(ast::Text const& t, std::uint64_t* deps) {
    std::vector<TextPiece> out;
    std::string const& s = t.value;
    std::size_t i = 0;
    while (i < s.size()) {
        std::size_t open = s.find('{', i);
        if (open == std::string::npos) {
            out.push_back(TextPiece{TextPiece::Kind::Literal, s.substr(i), 0, {}});
            break;
        }
        if (open > i) out.push_back(TextPiece{TextPiece::Kind::Literal, s.substr(i, open - i), 0, {}});
        std::size_t close = s.find('}', open);
        if (close == std::string::npos) {
            error(t, DiagnosticKind::syntax, "理由の文字列の { が閉じていません", "unclosed { in a reason text");
            return std::nullopt;
        }
        std::string name = s.substr(open + 1, close - open - 1);
        TextPiece p;
        if (int slot = slot_of(name); slot >= 0) {
            check_slot(std::uint32_t(slot));
            p = TextPiece{TextPiece::Kind::Slot, "", std::uint32_t(slot), prog_.slots[std::size_t(slot)].type};
        } else if (int f = prog_.find_fact(name); f >= 0) {
            p = TextPiece{TextPiece::Kind::Fact, "", std::uint32_t(f), prog_.facts[std::size_t(f)].type};
            if (deps) *deps |= std::uint64_t(1) << f;
        } else if (int pa = prog_.find_param(name); pa >= 0) {
            p = TextPiece{TextPiece::Kind::Param, "", std::uint32_t(pa), prog_.params[std::size_t(pa)].type};
        } else {
            std::vector<std::string> names = names_of_kind('s');
            for (auto const& n : names_of_kind('f')) names.push_back(n);
            for (auto const& n : names_of_kind('p')) names.push_back(n);
            auto [hint_ja, hint_en] = did_you_mean(name, names);
            error(t, DiagnosticKind::unknown_name, "理由の文字列の {" + name + "} は定義されていません" + hint_ja,
                  "unknown name {" + name + "} in a reason text" + hint_en);
            return std::nullopt;
        }
        out.push_back(std::move(p));
        i = close + 1;
    }
    return out;
}

void Checker::check_slot(std::uint32_t s) {
    auto& def = slot_defs_[s];
    if (def.state == SlotDef::State::Done) return;
    if (def.state == SlotDef::State::Checking) {
        std::uint16_t saved = file_;
        file_ = def.file;
        error(def.decl->name, DiagnosticKind::cycle,
              "循環参照:「" + def.decl->name.name + "」の定義が自分自身を使っています",
              "cycle: '" + def.decl->name.name + "' uses itself");
        file_ = saved;
        return;
    }
    def.state = SlotDef::State::Checking;
    std::uint16_t saved = file_;
    file_ = def.file;
    auto const& decl = *def.decl;
    auto& info = prog_.slots[s];
    std::optional<Type> declared;
    bool failed = false;
    if (decl.type) {
        declared = resolve_type(*decl.type);
        if (!declared) failed = true;
    } else if (info.decision) {
        error(decl.name, DiagnosticKind::type_mismatch, "decision には型を書いてください (decision 名前 : 型 …)",
              "a decision needs a type (decision name : type …)");
        failed = true;
    }
    Slot slot;
    slot.versioned =
        decl.versions.size() > 1 || decl.versions[0].from || decl.versions[0].until || decl.versions[0].label;
    if (slot.versioned && prog_.asof_fact < 0) {
        error(decl.versions[0], DiagnosticKind::unknown_name,
              "施行日 (version) を使うには asof で基準日の fact を宣言してください",
              "versions need an `asof` declaration naming the query-date fact");
        failed = true;
    }
    std::optional<Type> result = declared;
    std::uint32_t clause_base = std::uint32_t(prog_.clauses.size());
    for (std::size_t vi = 0; vi < decl.versions.size(); ++vi) {
        auto const& v = decl.versions[vi];
        Version out;
        out.info.label = v.label ? v.label->value : "";
        out.info.loc = loc(v);
        if (v.from) {
            if (auto d = date_literal(*v.from); d && d->type.kind == TypeKind::Date) out.info.from = d->value;
            else failed = true;
        } else if (vi > 0) {
            error(v, DiagnosticKind::version_gap, "2番目以降の version には施行日 (from) が必要です",
                  "every version after the first needs a `from` date");
            failed = true;
        }
        if (v.until) {
            if (auto d = date_literal(*v.until); d && d->type.kind == TypeKind::Date) out.info.until = d->value;
            else failed = true;
        }
        if (out.info.until < out.info.from) {
            error(v, DiagnosticKind::overlapping_versions, "施行期間の終わりが始まりより前です",
                  "the version ends before it starts");
            failed = true;
        }
        // Versions (施行期間) must tile time: each day is answered by exactly one version. An overlap would give one
        // day two answers; a gap would leave days on which the decision answers nothing (no_version, a null answer
        // for a real query): a notice is replaced by the next on its 施行日, never left without a successor, so a
        // gap is a mistake in the rule file (a wrong from or until), and it is cheaper to refuse it here than to
        // find it as a null in production. An open version (no until) ends the day before the next begins, so the
        // usual change — a new notice from a date — is written with one date.
        if (vi > 0 && !slot.versions.empty()) {
            auto& prev = slot.versions.back().info;
            if (prev.until == std::numeric_limits<std::int64_t>::max() &&
                out.info.from != std::numeric_limits<std::int64_t>::min())
                prev.until = out.info.from - 1;  // an open version ends where the next begins
            if (out.info.from <= prev.until) {
                error(v, DiagnosticKind::overlapping_versions,
                      "施行期間が前の version「" + prev.label + "」(〜" + Date::from_days(prev.until).iso() +
                          ") と重なっています",
                      "this version overlaps the previous one '" + prev.label + "' (until " +
                          Date::from_days(prev.until).iso() + ")");
                failed = true;
            } else if (out.info.from > prev.until + 1) {
                error(v, DiagnosticKind::version_gap,
                      "前の version「" + prev.label + "」(〜" + Date::from_days(prev.until).iso() +
                          ") との間に施行期間の空白があります (" + Date::from_days(prev.until + 1).iso() + " 〜 " +
                          Date::from_days(out.info.from - 1).iso() + ")",
                      "gap between this version and the previous one '" + prev.label +
                          "': " + Date::from_days(prev.until + 1).iso() + " .. " +
                          Date::from_days(out.info.from - 1).iso() + " is covered by no version");
                failed = true;
            }
        }
        bool decided = false;
        std::vector<std::string> seen_conditions;
        for (auto const& c : v.clauses) {
            Clause cl;
            cl.span = span(c);
            if (decided) {
                error(c, DiagnosticKind::unreachable, "この条項には来ません (前の otherwise ですべて決まります)",
                      "unreachable clause: an earlier otherwise already decides every case");
                failed = true;
                continue;
            }
            if (c.condition) {
                auto cond = expr(*c.condition, Type{TypeKind::Bool, -1});
                if (!cond) {
                    failed = true;
                } else if (cond->type.kind != TypeKind::Bool) {
                    error(*c.condition, DiagnosticKind::type_mismatch,
                          "when の条件は bool でなければなりません (" + tn(cond->type) + " です)",
                          "a when condition must be a bool (got " + tn(cond->type) + ")");
                    failed = true;
                } else {
                    std::string text = file().slice(span(*c.condition));
                    if (std::find(seen_conditions.begin(), seen_conditions.end(), text) != seen_conditions.end()) {
                        error(*c.condition, DiagnosticKind::unreachable,
                              "同じ条件が前の条項にあります (この条項には来ません)",
                              "the same condition appears in an earlier clause: unreachable");
                        failed = true;
                    }
                    seen_conditions.push_back(text);
                    if (cond->kind == Node::Kind::Const && cond->value == 0) {
                        error(*c.condition, DiagnosticKind::unreachable, "条件がいつも偽です (この条項には来ません)",
                              "the condition is always false: unreachable");
                        failed = true;
                    }
                    if (cond->kind == Node::Kind::Const && cond->value == 1) decided = true;
                    check_depth(*cond, *c.condition, failed);
                    cl.condition = std::move(*cond);
                }
            } else {
                decided = true;
            }
            auto val = expr(c.value, result);
            if (!val) {
                failed = true;
            } else if (val->type.kind == TypeKind::MonthRange || val->type.kind == TypeKind::MonthSet) {
                error(c.value, DiagnosticKind::type_mismatch, "let / decision の値に月の範囲や月の集合は使えません",
                      "a let or decision cannot hold a month range or month set");
                failed = true;
            } else if (result && !(val->type == *result)) {
                error(c.value, DiagnosticKind::type_mismatch,
                      "値の型が違います: " + tn(*result) + " が必要ですが " + tn(val->type) + " です",
                      "wrong value type: expected " + tn(*result) + ", got " + tn(val->type));
                failed = true;
            } else {
                result = val->type;
                check_depth(*val, c.value, failed);
                cl.value = std::move(*val);
            }
            if (c.because) {
                auto pieces = text_pieces(*c.because, nullptr);
                if (!pieces) failed = true;
                else cl.because = std::move(*pieces);
            }
            ClauseInfo ci;
            ci.slot = s;
            ci.version = std::uint32_t(vi);
            ci.otherwise = !c.condition;
            ci.loc = loc(c);
            ci.source = file().slice(span(c));
            ci.because = cl.because;
            cl.id = std::uint32_t(prog_.clauses.size());
            prog_.clauses.push_back(std::move(ci));
            out.clauses.push_back(std::move(cl));
        }
        if (!decided) {
            error(v.clauses.back(), DiagnosticKind::missing_otherwise,
                  "どの条件にも当たらない場合の値がありません。最後に otherwise => … を書いてください",
                  "this may not decide: no clause applies when every condition is false; end with otherwise => …");
            failed = true;
        }
        slot.versions.push_back(std::move(out));
    }
    (void)clause_base;
    if (result) info.type = *result;
    if (failed || !result) {
        def.state = SlotDef::State::Done;
        prog_.slots[s].type.kind = TypeKind::MonthRange;  // marks a failed slot; references to it are dropped
        failed_ = true;
    } else {
        def.state = SlotDef::State::Done;
        for (auto& v : slot.versions) prog_.slots[s].versions.push_back(v.info);
        if (!slot.versioned) prog_.slots[s].versions.clear();
        if (out_.slots.size() <= s) out_.slots.resize(prog_.slots.size());
        out_.slots[s] = std::move(slot);
    }
    file_ = saved;
}

std::optional<TestValue> Checker::test_value(ast::Expr const& e, Type target, bool contains) {
    TestValue v;
    if (auto const* id = leaf_as<ast::Ident>(e); id && id->name == "null") {
        v.is_null = true;
        return v;
    }
    if (contains) {
        auto const* t = leaf_as<ast::Text>(e);
        if (!t) {
            error(e, DiagnosticKind::type_mismatch, "~ の右には文字列を書きます", "~ takes a text");
            return std::nullopt;
        }
        v.text = t->value;
        return v;
    }
    if (target.kind == TypeKind::MonthSet) {
        auto const* s = leaf_as<ast::SetLit>(e);
        if (!s) {
            error(e, DiagnosticKind::type_mismatch, "set<month> の値は {2024-04, 2024-05 .. 2024-08} のように書きます",
                  "a set<month> value is written {2024-04, 2024-05 .. 2024-08}");
            return std::nullopt;
        }
        for (auto const& item : s->items) {
            auto n = expr(item, std::nullopt);
            if (!n) return std::nullopt;
            if (n->kind == Node::Kind::Const && n->type.kind == TypeKind::Month) v.months.push_back(n->value);
            else if (n->kind == Node::Kind::Range && n->kids[0].kind == Node::Kind::Const &&
                     n->kids[1].kind == Node::Kind::Const)
                for (auto m = n->kids[0].value; m <= n->kids[1].value; ++m) v.months.push_back(m);
            else {
                error(item, DiagnosticKind::type_mismatch, "月 (2024-04) か月の範囲 (2024-04 .. 2024-08) を書きます",
                      "write a month (2024-04) or a range of months (2024-04 .. 2024-08)");
                return std::nullopt;
            }
        }
        return v;
    }
    auto n = expr(e, target);
    if (!n) return std::nullopt;
    if (n->kind != Node::Kind::Const) {
        error(e, DiagnosticKind::type_mismatch, "テストの値は定数でなければなりません",
              "a test value must be a constant");
        return std::nullopt;
    }
    if (!(n->type == target)) {
        error(e, DiagnosticKind::type_mismatch, tn(target) + " 型の値が必要ですが " + tn(n->type) + " です",
              "expected a value of type " + tn(target) + ", got " + tn(n->type));
        return std::nullopt;
    }
    v.scalar = n->value;
    return v;
}

void Checker::check_tests() {
    auto bind = [&](ast::Binding const& b, bool expect) -> std::optional<TestBinding> {
        TestBinding tb;
        tb.loc = loc(b);
        tb.contains = b.op == ast::BindingOp::Contains;
        Type target;
        if (int s = slot_of(b.name.name); expect && s >= 0) {
            tb.target = TestBinding::Target::Slot;
            tb.id = std::uint32_t(s);
            target = prog_.slots[std::size_t(s)].type;
        } else if (int f = prog_.find_fact(b.name.name); !expect && f >= 0) {
            tb.target = TestBinding::Target::Fact;
            tb.id = std::uint32_t(f);
            target = prog_.facts[std::size_t(f)].type;
        } else if (int p = prog_.find_param(b.name.name); !expect && p >= 0) {
            tb.target = TestBinding::Target::Param;
            tb.id = std::uint32_t(p);
            target = prog_.params[std::size_t(p)].type;
        } else {
            std::vector<std::string> names = names_of_kind(expect ? 's' : 'f');
            if (!expect)
                for (auto const& n : names_of_kind('p')) names.push_back(n);
            auto [hint_ja, hint_en] = did_you_mean(b.name.name, names);
            error(b.name, DiagnosticKind::unknown_name,
                  std::string(expect ? "expect には let か decision の名前を書きます: 「"
                                     : "given には fact か param の名前を書きます: 「") +
                      b.name.name + "」は該当しません" + hint_ja,
                  std::string(expect ? "expect names a let or decision; " : "given names a fact or param; ") + "'" +
                      b.name.name + "' is neither" + hint_en);
            return std::nullopt;
        }
        if (tb.contains && (!expect || target.kind != TypeKind::Text)) {
            error(b, DiagnosticKind::type_mismatch, "~ (含む) は text 型の decision にだけ使えます",
                  "~ (contains) applies to text decisions only");
            return std::nullopt;
        }
        if (tb.target == TestBinding::Target::Param && target.kind == TypeKind::MonthSet) return std::nullopt;
        auto v = test_value(b.value, target, tb.contains);
        if (!v) return std::nullopt;
        if (target.kind == TypeKind::Text && !tb.contains && !v->is_null) {
            error(b, DiagnosticKind::type_mismatch, "text の decision は ~ \"含まれる文字列\" で確かめます",
                  "check a text decision with ~ \"substring\"");
            return std::nullopt;
        }
        tb.value = std::move(*v);
        return tb;
    };
    for (std::uint16_t f = 0; f < files_.size(); ++f) {
        file_ = f;
        for (auto const& d : files_[f]->ast) {
            auto const* t = boost::get<ast::TestDecl>(&d);
            if (!t) continue;
            TestCase tc;
            tc.name = t->name.value;
            tc.loc = loc(*t);
            bool ok = true;
            if (t->uses) {
                auto it = fixtures_.find(t->uses->name);
                if (it == fixtures_.end()) {
                    std::vector<std::string> names;
                    for (auto const& [k, v] : fixtures_) names.push_back(k);
                    auto [hint_ja, hint_en] = did_you_mean(t->uses->name, names);
                    error(*t->uses, DiagnosticKind::unknown_name,
                          "fixture「" + t->uses->name + "」は定義されていません" + hint_ja,
                          "unknown fixture '" + t->uses->name + "'" + hint_en);
                    ok = false;
                } else {
                    auto [slot, fresh] = fixture_index_.emplace(it->first, int(prog_.fixtures.size()));
                    if (fresh) {
                        std::vector<TestBinding> bindings;
                        std::uint16_t saved = file_;
                        file_ = it->second.second;
                        for (auto const& b : it->second.first->facts) {
                            auto tb = bind(b, false);
                            if (tb) bindings.push_back(std::move(*tb));
                            else ok = false;
                        }
                        file_ = saved;
                        prog_.fixtures.push_back(std::move(bindings));
                    }
                    tc.fixture = slot->second;
                }
            }
            for (auto const& b : t->given) {
                auto tb = bind(b, false);
                if (tb) tc.given.push_back(std::move(*tb));
                else ok = false;
            }
            for (auto const& b : t->expect) {
                auto tb = bind(b, true);
                if (tb) tc.expect.push_back(std::move(*tb));
                else ok = false;
            }
            if (ok) prog_.tests.push_back(std::move(tc));
        }
    }
}

std::uint64_t Checker::deps_of(Node const& n) const {
    std::uint64_t d = 0;
    if (n.kind == Node::Kind::Fact) d |= std::uint64_t(1) << n.value;
    if (n.kind == Node::Kind::Slot || n.kind == Node::Kind::Reason) d |= prog_.slots[std::size_t(n.value)].fact_deps;
    for (auto const& k : n.kids) d |= deps_of(k);
    return d;
}

void Checker::compute_deps(std::vector<std::uint32_t> const& order) {
    // In checking order, a slot's dependencies are known when its own are computed: one pass.
    {
        for (std::size_t s : order) {
            std::uint64_t d = out_.slots[s].versioned && prog_.asof_fact >= 0 ? std::uint64_t(1) << prog_.asof_fact : 0;
            for (auto const& v : out_.slots[s].versions)
                for (auto const& c : v.clauses) {
                    if (c.condition) d |= deps_of(*c.condition);
                    d |= deps_of(c.value);
                    for (auto const& p : c.because) {
                        if (p.kind == TextPiece::Kind::Fact) d |= std::uint64_t(1) << p.id;
                        if (p.kind == TextPiece::Kind::Slot) d |= prog_.slots[p.id].fact_deps;
                    }
                }
            prog_.slots[s].fact_deps = d;
        }
    }
}

}  // namespace

std::optional<Checked> check(std::vector<std::unique_ptr<ParsedFile>> const& files, std::vector<Diagnostic>& diags) {
    Checker c(files, diags);
    return c.run();
}

}  // namespace kyotaku::check
