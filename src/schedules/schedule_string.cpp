// Schedule strings "name:arg:arg...": the config-file shorthands cosine:<iters>:<min_lr> and
// warmup_cosine:<warmup>:<iters>:<min_lr> (their initial value is the optimizer's learning rate)
// and a spelled-out form of every built-in schedule with all of its arguments. Fields are
// numbered from 1, the name being field 1, and every error names the field.
#include <charconv>
#include <cmath>
#include <sstream>

#include "common/error.h"
#include "schedules/builtin_schedules.h"
#include "schedules/schedule_forms.h"

namespace descent::schedules {

namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// A leading '+' is accepted (from_chars does not take one).
std::string_view strip_plus(std::string_view s) {
  return (s.size() > 1 && s[0] == '+' && s[1] != '-' && s[1] != '+') ? s.substr(1) : s;
}

// The whole text as a double, independent of the C locale; nullopt if it is not a number.
std::optional<double> to_double(std::string_view text) {
  text = strip_plus(text);
  double v = 0;
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ptr != text.data() + text.size()) return std::nullopt;
  if (r.ec == std::errc::result_out_of_range) {
    // Overflow or underflow: let strtod-like semantics decide (inf or 0) via the stream path.
  } else if (r.ec != std::errc()) {
    return std::nullopt;
  } else {
    return v;
  }
#endif
  std::istringstream in{std::string(text)};
  in.imbue(std::locale::classic());
  in >> v;
  if (in.fail() && !(v == HUGE_VAL || v == -HUGE_VAL || v == 0.0)) return std::nullopt;
  if (!in.eof()) {
    in >> std::ws;
    if (!in.eof()) return std::nullopt;
  }
  return v;
}

std::string usage(const Form& form) {
  std::string out = form.name;
  for (const auto& f : form.fields)
    out += std::string(f.optional ? "[:<" : ":<") + f.name + (f.optional ? ">]" : ">");
  return out;
}

Arg string_arg(const std::string& what, const FieldSpec& field, std::string_view text) {
  if (text.empty()) throw Error(DESCENT_ERR_PARSE, what + " is empty");
  const std::string quoted = "'" + std::string(text) + "'";
  if (field.kind == FieldKind::Real) {
    const auto v = to_double(text);
    if (!v) throw Error(DESCENT_ERR_PARSE, what + " " + quoted + " is not a number");
    return real_arg(what, *v);
  }
  const std::string_view digits = strip_plus(text);
  int64_t i = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), i);
  if (r.ptr == digits.data() + digits.size() && r.ec == std::errc())
    return integer_arg(what, field.kind, i);
  const auto v = to_double(text);
  if (!v) throw Error(DESCENT_ERR_PARSE, what + " " + quoted + " is not a number");
  if (!std::isfinite(*v) || *v != std::floor(*v))
    throw Error(DESCENT_ERR_PARSE, what + " " + quoted + " is not an integer");
  if (!(std::fabs(*v) < 9.2e18))
    throw Error(DESCENT_ERR_OUT_OF_RANGE, what + " " + quoted + " is too large");
  return integer_arg(what, field.kind, static_cast<int64_t>(*v));  // "1e3"
}

}  // namespace

SchedulePtr parse_string_schedule(std::string_view spec, std::optional<double> init_lr) {
  const std::string_view text = trim(spec);
  if (text.empty()) throw Error(DESCENT_ERR_PARSE, "schedule: the specification is empty");
  std::vector<std::string_view> fields;
  for (std::size_t start = 0;;) {
    const std::size_t colon = text.find(':', start);
    fields.push_back(
        trim(text.substr(start, colon == std::string_view::npos ? colon : colon - start)));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  const std::string name(fields[0]);
  const Form* form = shorthand_form(name);
  if (!form) form = builtin_form(name);
  if (!form)
    throw Error(
        DESCENT_ERR_PARSE,
        "schedule: unknown schedule '" + name + "' in '" + std::string(text) + "' (known: " +
            usage(*shorthand_form("cosine")) + ", " + usage(*shorthand_form("warmup_cosine")) +
            ", " + usage(*builtin_form("exponential_decay")) + ", " +
            usage(*builtin_form("step_decay")) + ", " + usage(*builtin_form("cosine_decay")) +
            ", " + usage(*builtin_form("linear_schedule")) + ", " +
            usage(*builtin_form("constant")) + ", or a JSON object)");
  std::size_t required = 0;
  for (const auto& f : form->fields) required += f.optional ? 0 : 1;
  const std::size_t given = fields.size() - 1;
  if (given < required || given > form->fields.size())
    throw Error(DESCENT_ERR_PARSE, name + ": expected " + usage(*form) + ", got " +
                                       std::to_string(given) + " argument" +
                                       (given == 1 ? "" : "s") + " in '" + std::string(text) + "'");
  std::vector<Arg> args;
  for (std::size_t i = 0; i < form->fields.size(); ++i) {
    const FieldSpec& f = form->fields[i];
    if (i >= given) {
      args.push_back(Arg{f.fallback, 0});
      continue;
    }
    args.push_back(string_arg(name + ": field " + std::to_string(i + 2) + " (" + f.name + ")", f,
                              fields[i + 1]));
  }
  double init = 0.0;
  if (form->needs_init) {
    if (!init_lr)
      throw Error(DESCENT_ERR_INVALID_STATE,
                  name +
                      ": the initial value is the optimizer's learning_rate, which is not set "
                      "(set it first, or spell the schedule out, e.g. cosine_decay:<init>:"
                      "<decay_steps>:<end>)");
    init = real_arg(name + ": the initial learning rate", *init_lr).real;
  }
  return form->make(args, init);
}

}  // namespace descent::schedules
