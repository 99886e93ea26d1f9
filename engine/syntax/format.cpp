// The canonical formatter: prints the AST back in one layout (two-space indents, one declaration per block,
// minimal parentheses, one blank line kept where the author left one). Comments are kept: a comment on a line of
// its own is printed, on its own line, before the first construct that follows it in the source; a comment at
// the end of a line of code stays at the end of the line that construct is printed on. Formatting is idempotent.
#include "kyotaku/engine.hpp"
#include "source.hpp"

#include <sstream>

namespace kyotaku {

namespace {
using syntax::ParsedFile;
namespace x3 = boost::spirit::x3;

struct Comment {
    int line;
    std::string text;
    bool end_of_line;  // code precedes it on its line
    bool printed = false;
};

// Comments outside string literals, in source order.
std::vector<Comment> collect_comments(std::string const& text) {
    std::vector<Comment> out;
    int line = 1;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\n') {
            ++line;
            in_string = false;
        } else if (c == '"') {
            in_string = !in_string;
        } else if (c == '#' && !in_string) {
            std::size_t end = text.find('\n', i);
            if (end == std::string::npos) end = text.size();
            std::string t = text.substr(i, end - i);
            while (!t.empty() && (t.back() == ' ' || t.back() == '\r' || t.back() == '\t')) t.pop_back();
            std::size_t line_start = text.rfind('\n', i == 0 ? 0 : i - 1);
            line_start = line_start == std::string::npos || i == 0 ? 0 : line_start + 1;
            bool code_before = text.substr(line_start, i - line_start).find_first_not_of(" \t\r") != std::string::npos;
            out.push_back({line, t, code_before});
            i = end - 1;
        }
    }
    return out;
}

// How tightly an operator binds (the grammar's levels; `not` is 4 in operand()): parentheses are printed where
// a lower level stands inside a higher one.
int precedence(ast::BinaryOp op) {
    using enum ast::BinaryOp;
    switch (op) {
        case Or: return 1;
        case And: return 2;
        case Range: return 5;
        case Add: case Sub: return 6;
        case Mul: return 7;
        default: return 4;  // the comparisons
    }
}

class Printer {
public:
    explicit Printer(ParsedFile const& f) : f_(f), comments_(collect_comments(f.text)) {}

    std::string run() {
        for (auto const& d : f_.ast) {
            auto const& tagged = boost::apply_visitor([](auto const& n) -> x3::position_tagged const& { return n; }, d);
            int line = line_of(tagged);
            comments_before(line, 0, true);
            keep_blank(line);
            boost::apply_visitor([&](auto const& n) { decl(n); }, d);
            end_of_line(line, end_line_of(tagged));
            out_ += "\n";
            last_line_ = end_line_of(tagged);
        }
        comments_before(1 << 30, 0, true);
        return out_;
    }

private:
    ParsedFile const& f_;
    std::vector<Comment> comments_;
    std::size_t next_comment_ = 0;
    int last_line_ = 0;  // source line of the last top-level thing printed
    std::string out_;

    int line_of(x3::position_tagged const& n) const { return f_.line_col(f_.span_of(n, 0).begin).first; }
    int end_line_of(x3::position_tagged const& n) const {
        auto s = f_.span_of(n, 0);
        return f_.line_col(s.end > s.begin ? s.end - 1 : s.end).first;
    }
    bool blank_between(int a, int b) const {
        for (int l = a + 1; l < b; ++l) {
            std::string t = f_.line_text(l);
            if (t.find_first_not_of(" \t\r") == std::string::npos) return true;
        }
        return false;
    }
    // At the top level, one blank line is kept where the source has at least one.
    void keep_blank(int line) {
        if (last_line_ > 0 && blank_between(last_line_, line)) out_ += "\n";
    }
    void comments_before(int line, int indent, bool top = false) {
        while (next_comment_ < comments_.size() && comments_[next_comment_].line < line) {
            Comment& c = comments_[next_comment_++];
            if (c.printed) continue;
            c.printed = true;
            if (top) keep_blank(c.line);
            out_ += std::string(std::size_t(indent), ' ') + c.text + "\n";
            if (top) last_line_ = c.line;
        }
    }
    // The end-of-line comments of source lines from..to, appended to the output line being written.
    void end_of_line(int from, int to) {
        for (std::size_t i = next_comment_; i < comments_.size() && comments_[i].line <= to; ++i) {
            Comment& c = comments_[i];
            if (c.printed || !c.end_of_line || c.line < from) continue;
            c.printed = true;
            out_ += "  " + c.text;
        }
    }
    void end_of_line(x3::position_tagged const& n) { end_of_line(line_of(n), end_line_of(n)); }
    std::string end_of_line_text(x3::position_tagged const& n) {
        std::string saved;
        std::swap(saved, out_);
        end_of_line(n);
        std::swap(saved, out_);
        return saved;
    }
    static std::string pad(int n) { return std::string(std::size_t(n), ' '); }

    std::string type(ast::TypeRef const& t) { return t.is_set ? "set<" + t.name.name + ">" : t.name.name; }
    std::string text(ast::Text const& t) { return "\"" + t.value + "\""; }

    // Expressions ---------------------------------------------------------------------------------------------
    static int level(ast::Expr const& e) {
        int p = 9;
        for (auto const& op : e.rest) p = std::min(p, precedence(op.op));
        return p;
    }
    std::string operand(ast::Operand const& o, int context, bool right, int indent) {
        if (auto const* e = boost::get<x3::forward_ast<ast::Expr>>(&o)) {
            auto const& inner = e->get();
            if (inner.rest.empty()) return operand(inner.first, context, right, indent);
            int l = level(inner);
            std::string s = expr(inner, indent);
            return (l < context || (right && l == context)) ? "(" + s + ")" : s;
        }
        struct V {
            Printer& p;
            int indent;
            std::string operator()(ast::Nil) const { return ""; }
            std::string operator()(ast::DateText const& d) const { return d.text; }
            std::string operator()(ast::Number const& n) const { return std::to_string(n.value); }
            std::string operator()(ast::Text const& t) const { return "\"" + t.value + "\""; }
            std::string operator()(ast::Ident const& i) const { return i.name; }
            std::string operator()(ast::Call const& c) const {
                std::string s = c.function.name + "(";
                for (std::size_t i = 0; i < c.args.size(); ++i) s += (i ? ", " : "") + p.expr(c.args[i], indent);
                return s + ")";
            }
            std::string operator()(ast::SetLit const& set) const {
                std::string s = "{";
                for (std::size_t i = 0; i < set.items.size(); ++i) s += (i ? ", " : "") + p.expr(set.items[i], indent);
                s += "}";
                // Measured in columns as an editor shows them (a Japanese character takes two), not in characters:
                // a set of Japanese names stays one item a line when one of its lines is deleted.
                if (display_width(s) <= 60) return s;
                // A long set: one item a line, with a trailing comma.
                s = "{\n";
                for (auto const& item : set.items) s += pad(indent + 2) + p.expr(item, indent + 2) + ",\n";
                return s + pad(indent) + "}";
            }
            std::string operator()(ast::Unary const& u) const {
                if (u.op == ast::UnaryOp::Not) return "not " + p.operand(u.operand, 4, false, indent);
                return "-" + p.operand(u.operand, 9, false, indent);
            }
            std::string operator()(ast::Match const& m) const {
                std::string s = "match " + p.expr(m.subject, indent) + " {\n";
                for (auto const& arm : m.arms) {
                    s += pad(indent + 2);
                    for (std::size_t i = 0; i < arm.patterns.size(); ++i) s += (i ? ", " : "") + arm.patterns[i].name;
                    s += " => " + p.expr(arm.value, indent + 2) + p.end_of_line_text(arm) + "\n";
                }
                return s + pad(indent) + "}";
            }
            std::string operator()(ast::IfExpr const& i) const {
                return "if " + p.expr(i.condition, indent) + " then " + p.expr(i.then_value, indent) + " else " +
                       p.expr(i.else_value, indent);
            }
            std::string operator()(ast::Expr const& e) const { return p.expr(e, indent); }
        };
        return boost::apply_visitor(V{*this, indent}, o);
    }
    std::string expr(ast::Expr const& e, int indent) {
        int l = e.rest.empty() ? 0 : level(e);
        std::string s = operand(e.first, l, false, indent);
        for (auto const& op : e.rest) {
            s += " " + std::string(ast::spelling(op.op)) + " ";
            s += operand(op.operand, precedence(op.op), true, indent);
            if (op.unit != ast::Unit::None) s += " " + std::string(ast::spelling(op.unit));
            if (op.rounding != ast::Rounding::None) s += " round " + std::string(ast::spelling(op.rounding));
        }
        return s;
    }

    // Declarations --------------------------------------------------------------------------------------------
    void decl(ast::EnumDecl const& e) {
        std::string one = "enum " + e.name.name + " { ";
        for (std::size_t i = 0; i < e.values.size(); ++i) one += (i ? ", " : "") + e.values[i].name;
        one += " }";
        if (display_width(one) <= 100) {
            out_ += one;
            return;
        }
        out_ += "enum " + e.name.name + " {";
        end_of_line(line_of(e), line_of(e));
        out_ += "\n";
        for (auto const& v : e.values) {
            comments_before(line_of(v), 2);
            out_ += "  " + v.name + ",";
            end_of_line(v);
            out_ += "\n";
        }
        out_ += "}";
    }
    void decl(ast::FactDecl const& f) {
        out_ += "fact " + f.name.name + (f.label ? " " + text(*f.label) : std::string()) + " : " + type(f.type);
        if (f.default_value) out_ += " = " + expr(*f.default_value, 0);
    }
    void decl(ast::ParamDecl const& p) {
        out_ += "param " + p.name.name;
        if (p.type) out_ += " : " + type(*p.type);
        out_ += " = " + expr(p.value, 0);
    }
    void decl(ast::AsofDecl const& a) { out_ += "asof " + a.fact.name; }
    void decl(ast::HorizonDecl const& h) { out_ += "horizon " + h.date.text; }
    // One line when it fits in 100 columns; else the property on its own indented line.
    void decl(ast::InvariantDecl const& i) {
        std::string const head = std::string(i.kind == ast::PropertyKind::Invariant ? "invariant " : "assume ") +
                                 i.name.name + (i.label ? " " + text(*i.label) : std::string()) + ":";
        std::string body = expr(i.condition, 1);
        if (i.consequence) body += " implies " + expr(*i.consequence, 1);
        out_ += display_width(head + " " + body) <= 100 ? head + " " + body : head + "\n  " + body;
    }
    void clause(ast::Clause const& c, int indent) {
        comments_before(line_of(c), indent);
        out_ +=
            pad(indent) + (c.condition ? "when " + expr(*c.condition, indent) + " => " : std::string("otherwise => "));
        out_ += expr(c.value, indent);
        if (c.because) {
            end_of_line(line_of(c), line_of(*c.because) - 1);
            out_ += "\n" + pad(indent + 2) + "because " + text(*c.because);
        }
        end_of_line(c);
        out_ += "\n";
    }
    void decl(ast::SlotDecl const& s) {
        out_ += std::string(ast::spelling(s.kind)) + " " + s.name.name;
        if (s.label) out_ += " " + text(*s.label);
        if (s.type) out_ += " : " + type(*s.type);
        auto const& vs = s.versions;
        bool simple = vs.size() == 1 && !vs[0].label && !vs[0].from && !vs[0].until && vs[0].clauses.size() == 1 &&
                      !vs[0].clauses[0].condition;
        if (simple) {
            auto const& c = vs[0].clauses[0];
            out_ += " = " + expr(c.value, 0);
            if (c.because) {
                end_of_line(line_of(s), line_of(*c.because) - 1);
                out_ += "\n  because " + text(*c.because);
            }
            return;
        }
        bool versioned = vs.size() > 1 || vs[0].label || vs[0].from || vs[0].until;
        if (!versioned) {
            out_ += " {";
            end_of_line(line_of(s), line_of(vs[0].clauses[0]) - 1);
            out_ += "\n";
            for (auto const& c : vs[0].clauses) clause(c, 2);
            comments_inside(s, 2);
            out_ += "}";
            return;
        }
        end_of_line(line_of(s), line_of(vs[0]) - 1);
        out_ += "\n";
        for (auto const& v : vs) {
            comments_before(line_of(v), 2);
            out_ += "  version";
            if (v.label) out_ += " " + text(*v.label);
            if (v.from) out_ += " from " + v.from->text;
            if (v.until) out_ += " until " + v.until->text;
            out_ += " {";
            end_of_line(line_of(v), line_of(v.clauses[0]) - 1);
            out_ += "\n";
            for (auto const& c : v.clauses) clause(c, 4);
            comments_inside(v, 4);
            out_ += "  }\n";
        }
        out_.pop_back();
    }
    // Comments before the closing brace of a block.
    void comments_inside(x3::position_tagged const& block, int indent) { comments_before(end_line_of(block), indent); }
    void bindings(std::vector<ast::Binding> const& bs, int indent) {
        for (auto const& b : bs) {
            comments_before(line_of(b), indent);
            out_ += pad(indent) + b.name.name + " " + std::string(ast::spelling(b.op)) + " " + expr(b.value, indent);
            end_of_line(b);
            out_ += "\n";
        }
    }
    void decl(ast::FixtureDecl const& f) {
        out_ += "fixture " + f.name.name + " {";
        end_of_line(line_of(f), f.facts.empty() ? line_of(f) : line_of(f.facts[0]) - 1);
        out_ += "\n";
        bindings(f.facts, 2);
        comments_inside(f, 2);
        out_ += "}";
    }
    void decl(ast::TestDecl const& t) {
        out_ += "test " + text(t.name);
        if (t.uses) out_ += " uses " + t.uses->name;
        out_ += " {";
        end_of_line(line_of(t), line_of(t));
        out_ += "\n";
        if (!t.given.empty()) {
            out_ += "  given\n";
            bindings(t.given, 4);
        }
        out_ += "  expect\n";
        bindings(t.expect, 4);
        comments_inside(t, 2);
        out_ += "}";
    }
};
}  // namespace

FormatResult format_source(SourceFile const& file) {
    FormatResult r;
    auto parsed = syntax::parse_file(file.path, file.text, r.diagnostics);
    if (!parsed->ok) return r;
    r.text = Printer(*parsed).run();
    return r;
}

}  // namespace kyotaku
