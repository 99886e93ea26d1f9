// The rule-file grammar (definitions). Included only by grammar.cpp.
//
// Statements are delimited by keywords, not by newlines, so a clause may span lines freely. Literals are kept
// as text in the AST; the checker validates them so that a bad date gets its own diagnostic.
#pragma once

#include "grammar.hpp"

#include <boost/spirit/home/x3.hpp>
#include <boost/spirit/home/x3/support/utility/lambda_visitor.hpp>

// What a syntax error says was expected: X3 names a rule by its name, a literal by itself, and anything else by its
// C++ type. These give the combinators the names of what they are made of ("then", 式 expression, "clamp" / "up").
namespace boost::spirit::x3 {
template <typename S>
struct get_info<plus<S>> {
    using result_type = std::string;
    std::string operator()(plus<S> const& p) const { return what(p.subject); }
};
template <typename S>
struct get_info<kleene<S>> {
    using result_type = std::string;
    std::string operator()(kleene<S> const& p) const { return what(p.subject); }
};
template <typename S>
struct get_info<lexeme_directive<S>> {
    using result_type = std::string;
    std::string operator()(lexeme_directive<S> const& p) const { return what(p.subject); }
};
template <typename S, typename C>
struct get_info<repeat_directive<S, C>> {
    using result_type = std::string;
    std::string operator()(repeat_directive<S, C> const& p) const { return what(p.subject); }
};
template <typename L, typename R>
struct get_info<list<L, R>> {
    using result_type = std::string;
    std::string operator()(list<L, R> const& p) const { return what(p.left); }
};
template <typename L, typename R>
struct get_info<sequence<L, R>> {
    using result_type = std::string;
    std::string operator()(sequence<L, R> const& p) const { return what(p.left); }
};
template <typename L, typename R>
struct get_info<alternative<L, R>> {
    using result_type = std::string;
    std::string operator()(alternative<L, R> const& p) const { return what(p.left) + " / " + what(p.right); }
};
}  // namespace boost::spirit::x3

namespace kyotaku::grammar {

struct position_tag;

// Tags each successfully parsed node with its source range in the position cache.
struct annotate_position {
    template <typename It, typename Ctx, typename... Ts>
    void on_success(It const& first, It const& last, x3::variant<Ts...>& node, Ctx const& ctx) {
        node.apply_visitor(
            x3::make_lambda_visitor<void>([&](auto& inner) { this->on_success(first, last, inner, ctx); }));
    }
    template <typename It, typename Ctx, typename T>
    void on_success(It const& first, It const& last, x3::forward_ast<T>& node, Ctx const& ctx) {
        on_success(first, last, node.get(), ctx);
    }
    template <typename It, typename Ctx, typename T>
    void on_success(It const& first, It const& last, T& node, Ctx const& ctx) {
        if constexpr (std::is_base_of_v<x3::position_tagged, T>) {
            auto& cache = x3::get<position_tag>(ctx).get();
            cache.annotate(node, first, last);
        }
    }
};

struct depth_tag;
inline constexpr int max_nesting = 100;
inline char const* const nesting_error = "nesting-limit";

// Bounds the recursion of the grammar (parentheses, match, if, not): deeply nested input is an error, never a
// stack overflow.
template <typename Subject>
struct depth_guard_directive : x3::unary_parser<Subject, depth_guard_directive<Subject>> {
    using base_type = x3::unary_parser<Subject, depth_guard_directive<Subject>>;
    static bool const is_pass_through_unary = true;
    constexpr depth_guard_directive(Subject const& subject) : base_type(subject) {}
    template <typename It, typename Ctx, typename RCtx, typename Attr>
    bool parse(It& first, It const& last, Ctx const& ctx, RCtx& rctx, Attr& attr) const {
        int& depth = x3::get<depth_tag>(ctx).get();
        if (depth >= max_nesting) boost::throw_exception(x3::expectation_failure<It>(first, nesting_error));
        struct Restore {
            int& d;
            ~Restore() { --d; }
        } restore{++depth};
        return this->subject.parse(first, last, ctx, rctx, attr);
    }
};
struct depth_guard_gen {
    template <typename Subject>
    constexpr depth_guard_directive<typename x3::extension::as_parser<Subject>::value_type> operator[](
        Subject const& s) const {
        return {x3::as_parser(s)};
    }
};
inline constexpr depth_guard_gen depth_guard{};

// Characters that never belong to a name: Japanese punctuation written where code punctuation was meant (、。「」
// quotes, arrows) and invisible characters (BOM, zero-width spaces, no-break space). The parser stops there and the
// syntax error names the character (source.cpp).
inline bool not_in_names(char32_t cp) {
    switch (cp) {
        case 0x3001: case 0x3002: case 0x300C: case 0x300D: case 0x300E: case 0x300F: case 0x2018: case 0x2019:
        case 0x201C: case 0x201D: case 0x2192: case 0x21D2: case 0x2212: case 0xFEFF: case 0x200B: case 0x200C:
        case 0x200D: case 0x2060: case 0x00A0: return true;
        default: return false;
    }
}

// One byte of an identifier: ASCII letters, digits, `_`, or any byte of a multi-byte UTF-8 character
// (Japanese names and enum values) except the characters above.
template <bool Start>
struct id_char_parser : x3::parser<id_char_parser<Start>> {
    using attribute_type = char;
    static bool const has_attribute = true;
    template <typename It, typename Ctx, typename RCtx, typename Attr>
    bool parse(It& first, It const& last, Ctx const& ctx, RCtx&, Attr& attr) const {
        x3::skip_over(first, last, ctx);
        if (first == last) return false;
        auto c = static_cast<unsigned char>(*first);
        if (c >= 0xC0) {  // the first byte of a character: decode it
            std::size_t const n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            char32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
            It p = first;
            for (std::size_t k = 1; k < n && ++p != last; ++k) cp = (cp << 6) | (static_cast<unsigned char>(*p) & 0x3F);
            if (not_in_names(cp)) return false;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80 ||
                  (!Start && c >= '0' && c <= '9');
        if (!ok) return false;
        x3::traits::move_to(static_cast<char>(c), attr);
        ++first;
        return true;
    }
};
id_char_parser<true> const id_start{};
id_char_parser<false> const id_char{};

// A keyword: the word not followed by an identifier character.
inline auto kw(char const* word) { return x3::lexeme[x3::lit(word) >> !id_char]; }

auto const keyword = kw("enum") | kw("fact") | kw("param") | kw("let") | kw("decision") | kw("when") | kw("otherwise") |
                     kw("because") | kw("version") | kw("from") | kw("until") | kw("test") | kw("given") |
                     kw("expect") | kw("uses") | kw("fixture") | kw("match") | kw("if") | kw("then") | kw("else") |
                     kw("and") | kw("or") | kw("not") | kw("in") | kw("asof") | kw("round") | kw("days") | kw("day") |
                     kw("months") | kw("month") | kw("export") | kw("invariant") | kw("implies") | kw("horizon") |
                     kw("assume");

using x3::attr;
using x3::lexeme;
using x3::lit;

x3::rule<class ident_id, ast::Ident> const ident = "名前 name";
x3::rule<class type_name_id, ast::Ident> const type_name = "型名 type name";
x3::rule<class number_id, ast::Number> const number = "数値 number";
x3::rule<class date_text_id, ast::DateText> const date_text = "日付 date";
x3::rule<class text_id, ast::Text> const text = "文字列 \"text\"";
x3::rule<class expr_id, ast::Expr> const expr = "式 expression";
x3::rule<class and_expr_id, ast::Expr> const and_expr = "式 expression";
x3::rule<class not_expr_id, ast::Operand> const not_expr = "式 expression";
x3::rule<class not_op_id, ast::Unary> const not_op = "not";
x3::rule<class cmp_expr_id, ast::Expr> const cmp_expr = "式 expression";
x3::rule<class range_expr_id, ast::Expr> const range_expr = "式 expression";
x3::rule<class add_expr_id, ast::Expr> const add_expr = "式 expression";
x3::rule<class mul_expr_id, ast::Expr> const mul_expr = "式 expression";
x3::rule<class unary_expr_id, ast::Operand> const unary_expr = "式 expression";
x3::rule<class neg_id, ast::Unary> const neg = "-";
x3::rule<class primary_id, ast::Operand> const primary = "値 value";
x3::rule<class cmp_op_id, ast::BinaryOp> const cmp_op = "比較 comparison";
x3::rule<class add_operation_id, ast::Operation> const add_operation = "+ / -";
x3::rule<class unit_id, ast::Unit> const unit = "単位 unit";
x3::rule<class rounding_id, ast::Rounding> const rounding = "round clamp / round up";
x3::rule<class call_id, ast::Call> const call = "関数呼び出し call";
x3::rule<class set_lit_id, ast::SetLit> const set_lit = "集合 {…}";
x3::rule<class match_id, ast::Match> const match = "match";
x3::rule<class arm_id, ast::MatchArm> const arm = "match の枝 match arm";
x3::rule<class if_id, ast::IfExpr> const if_expr = "if";
x3::rule<class type_ref_id, ast::TypeRef> const type_ref = "型 type";
x3::rule<class enum_decl_id, ast::EnumDecl> const enum_decl = "enum";
x3::rule<class fact_decl_id, ast::FactDecl> const fact_decl = "fact";
x3::rule<class param_decl_id, ast::ParamDecl> const param_decl = "param";
x3::rule<class asof_decl_id, ast::AsofDecl> const asof_decl = "asof";
x3::rule<class clause_id, ast::Clause> const clause = "条項 clause (when … => … / otherwise => …)";
x3::rule<class simple_clause_id, ast::Clause> const simple_clause = "式 expression";
x3::rule<class version_id, ast::Version> const version = "version";
x3::rule<class simple_version_id, ast::Version> const simple_version = "式 expression";
x3::rule<class block_version_id, ast::Version> const block_version = "条項 clause";
x3::rule<class body_id, std::vector<ast::Version>> const body = "本体 body (= 式, { 条項 }, version …)";
x3::rule<class slot_decl_id, ast::SlotDecl> const slot_decl = "let / decision / export let";
x3::rule<class binding_id, ast::Binding> const binding = "名前 = 値 name = value";
x3::rule<class fixture_id, ast::FixtureDecl> const fixture_decl = "fixture";
x3::rule<class test_id, ast::TestDecl> const test_decl = "test";
x3::rule<class invariant_id, ast::InvariantDecl> const invariant_decl = "invariant / assume";
x3::rule<class horizon_id, ast::HorizonDecl> const horizon_decl = "horizon";
x3::rule<class decl_id, ast::Decl> const decl = "宣言 declaration";
x3::rule<class file_id, ast::File> const file =
    "宣言 declaration (enum, fact, param, asof, let, decision, export let, fixture, test, invariant, assume, horizon)";

auto const digit = x3::char_('0', '9');
auto const ident_def = x3::raw[lexeme[!keyword >> (id_start >> *id_char) >> *('.' >> id_start >> *id_char)]];
auto const type_name_def = x3::raw[lexeme[id_start >> *id_char]];
auto const number_def = x3::long_long;

auto const era_kanji = lit("令和") | lit("平成") | lit("昭和") | lit("大正") | lit("明治");
auto const iso_dm = x3::repeat(4)[digit] >> '-' >> x3::repeat(1, 2)[digit] >> -('-' >> x3::repeat(1, 2)[digit]);
auto const wareki = era_kanji >> (lit("元") | +digit) >> lit("年") >> +digit >> lit("月") >> -(+digit >> lit("日"));
auto const wareki_letter = x3::char_("MTSHRmtshr") >> +digit >> '.' >> +digit >> -('.' >> +digit);
auto const date_text_def = lexeme[x3::raw[iso_dm | wareki | wareki_letter] >> !id_char >> !digit];

auto const text_def = lexeme['"' > *(x3::char_ - '"' - x3::eol) > '"'];

// The tokens (calc9's symbol tables): each spelling a rule file may use maps to one enum value, so the aliases of a
// unit are one token from here on. Words need a keyword's boundary (`days` but not `daysx`); the Japanese marks
// do not (`3か月`, `10日`).
// (Instances, not derived structs as in calc9: a syntax error names a parser by its type unless it has a name.)
x3::symbols<ast::BinaryOp> const two_char_comparison(
    {{"==", ast::BinaryOp::Eq}, {"!=", ast::BinaryOp::Ne}, {"<=", ast::BinaryOp::Le}, {">=", ast::BinaryOp::Ge}},
    "比較 comparison");
x3::symbols<ast::Unit> const unit_word(
    {{"days", ast::Unit::Days}, {"day", ast::Unit::Days}, {"months", ast::Unit::Months}, {"month", ast::Unit::Months}},
    "単位 unit");
x3::symbols<ast::Unit> const unit_mark(
    {{"日", ast::Unit::Days}, {"か月", ast::Unit::Months}, {"ヶ月", ast::Unit::Months}, {"カ月", ast::Unit::Months}},
    "単位 unit");
// Named as a syntax error quotes the alternatives: expected "clamp" / "up".
x3::symbols<ast::Rounding> const rounding_word({{"clamp", ast::Rounding::Clamp}, {"up", ast::Rounding::Up}},
                                               "\"clamp\" / \"up\"");

// An operation without a unit or a rounding policy (all but + and -) fills them with None.
auto const no_unit = attr(ast::Unit::None);
auto const no_rounding = attr(ast::Rounding::None);
using Op = ast::BinaryOp;

auto const expr_def = depth_guard[and_expr] >> *(attr(Op::Or) >> kw("or") > not_expr > no_unit > no_rounding);
auto const and_expr_def = not_expr >> *(attr(Op::And) >> kw("and") > not_expr > no_unit > no_rounding);
auto const not_op_def = kw("not") >> attr(ast::UnaryOp::Not) >> !kw("in") > depth_guard[not_expr];
auto const not_expr_def = not_op | cmp_expr;
auto const cmp_op_def = two_char_comparison | (lit("<") >> !lit('-') >> attr(Op::Lt)) |
                        (lit(">") >> !lit('=') >> attr(Op::Gt)) |
                        (kw("not") >> kw("in") >> attr(Op::NotIn)) | (kw("in") >> attr(Op::In));
auto const cmp_expr_def = range_expr >> *(cmp_op > range_expr > no_unit > no_rounding);
auto const range_expr_def = add_expr >> *(lit("..") >> attr(Op::Range) > add_expr > no_unit > no_rounding);
auto const unit_def = lexeme[unit_word >> !id_char] | unit_mark;
auto const rounding_def = kw("round") > lexeme[rounding_word >> !id_char];
auto const add_operation_def = ((lit("+") >> attr(Op::Add)) | (lit("-") >> !lit('>') >> attr(Op::Sub))) > mul_expr >
                               (unit | no_unit) > (rounding | no_rounding);
auto const add_expr_def = mul_expr >> *add_operation;
auto const mul_expr_def = unary_expr >> *(lit("*") >> attr(Op::Mul) > unary_expr > no_unit > no_rounding);
auto const neg_def = lit("-") >> attr(ast::UnaryOp::Neg) > primary;
auto const unary_expr_def = neg | primary;
auto const call_def = ident >> '(' > -(expr % ',') > ')';
auto const set_lit_def = x3::char_('{') > -(expr % ',') > -lit(',') > '}';
auto const arm_def = (ident % ',') > "=>" > expr > -lit(',');
auto const match_def = kw("match") > expr > '{' > +arm > '}';
auto const if_expr_def = kw("if") > expr > kw("then") > expr > kw("else") > expr;
auto const primary_def = date_text | number | text | match | if_expr | call | set_lit | ident | ('(' > expr > ')');

auto const type_ref_def = (lit("set") >> attr(true) >> '<' > type_name > '>') | (attr(false) >> type_name);
auto const enum_decl_def = kw("enum") > ident > '{' > (ident % ',') > -lit(',') > '}';
auto const fact_decl_def = kw("fact") > ident > -text > ':' > type_ref > -(lit('=') > expr);
auto const param_decl_def = kw("param") > ident > -(':' > type_ref) > '=' > expr;
auto const asof_decl_def = kw("asof") >> attr('a') > ident;
auto const because = kw("because") > text;
auto const clause_def = (kw("when") > expr > "=>" > expr > -because) |
                        (kw("otherwise") >> attr(boost::optional<ast::Expr>()) > "=>" > expr > -because);
auto const simple_clause_def = attr(boost::optional<ast::Expr>()) >> expr >> -because;
auto const version_def = kw("version") > -text > -(kw("from") > date_text) > -(kw("until") > date_text) > '{' >
                         +clause > '}';
auto const simple_version_def = attr(boost::optional<ast::Text>()) >> attr(boost::optional<ast::DateText>()) >>
                                attr(boost::optional<ast::DateText>()) >> x3::repeat(1)[simple_clause];
auto const block_version_def = attr(boost::optional<ast::Text>()) >> attr(boost::optional<ast::DateText>()) >>
                               attr(boost::optional<ast::DateText>()) >> (+clause > '}');
auto const body_def = (lit('=') > x3::repeat(1)[simple_version]) | (lit('{') > x3::repeat(1)[block_version]) | +version;
auto const slot_kind = (kw("decision") >> attr(ast::SlotKind::Decision)) | (kw("let") >> attr(ast::SlotKind::Let)) |
                       (kw("export") > kw("let") > attr(ast::SlotKind::ExportLet));
auto const slot_decl_def = slot_kind > ident > -text > -(':' > type_ref) > body;
auto const binding_op = (lit("=") >> attr(ast::BindingOp::Equals)) | (lit("~") >> attr(ast::BindingOp::Contains));
auto const binding_def = ident > binding_op > expr > -lit(',');
auto const fixture_decl_def = kw("fixture") > ident > '{' > *binding > '}';
auto const given = (kw("given") > *binding) | attr(std::vector<ast::Binding>());
auto const test_decl_def = kw("test") > text > -(kw("uses") > ident) > '{' > given > kw("expect") > +binding > '}';
auto const property_kind =
    (kw("invariant") >> attr(ast::PropertyKind::Invariant)) | (kw("assume") >> attr(ast::PropertyKind::Assumption));
auto const invariant_decl_def = property_kind > ident > -text > ':' > expr > -(kw("implies") > expr);
auto const horizon_decl_def = kw("horizon") >> attr('h') > date_text;
auto const decl_def = enum_decl | fact_decl | param_decl | asof_decl | slot_decl | fixture_decl | test_decl |
                      invariant_decl | horizon_decl;
auto const file_def = *decl > x3::eoi;

BOOST_SPIRIT_DEFINE(ident, type_name, number, date_text, text, expr, and_expr, not_expr, not_op, cmp_expr, range_expr,
                    add_expr, mul_expr, unary_expr, neg, primary, cmp_op, add_operation, unit, rounding, call, set_lit,
                    match, arm, if_expr, type_ref, enum_decl, fact_decl, param_decl, asof_decl, clause, simple_clause,
                    version, simple_version, block_version, body, slot_decl, binding, fixture_decl, test_decl,
                    invariant_decl, horizon_decl, decl, file)

// Every rule tags its node with a position.
struct ident_id : annotate_position {};
struct type_name_id : annotate_position {};
struct number_id : annotate_position {};
struct date_text_id : annotate_position {};
struct text_id : annotate_position {};
struct expr_id : annotate_position {};
struct and_expr_id : annotate_position {};
struct cmp_expr_id : annotate_position {};
struct range_expr_id : annotate_position {};
struct add_expr_id : annotate_position {};
struct mul_expr_id : annotate_position {};
struct not_op_id : annotate_position {};
struct neg_id : annotate_position {};
struct add_operation_id : annotate_position {};
struct call_id : annotate_position {};
struct set_lit_id : annotate_position {};
struct match_id : annotate_position {};
struct arm_id : annotate_position {};
struct if_id : annotate_position {};
struct type_ref_id : annotate_position {};
struct enum_decl_id : annotate_position {};
struct fact_decl_id : annotate_position {};
struct param_decl_id : annotate_position {};
struct asof_decl_id : annotate_position {};
struct clause_id : annotate_position {};
struct simple_clause_id : annotate_position {};
struct version_id : annotate_position {};
struct simple_version_id : annotate_position {};
struct block_version_id : annotate_position {};
struct slot_decl_id : annotate_position {};
struct binding_id : annotate_position {};
struct fixture_id : annotate_position {};
struct test_id : annotate_position {};
struct invariant_id : annotate_position {};
struct horizon_id : annotate_position {};

}  // namespace kyotaku::grammar
