// svcctl call SVC IFACE: invoke an interface, straight to a provider chosen from the
// registry (in the interface's encoding), or through a gateway with --via.
#include "cli_tree.hpp"
#include "commands.hpp"

#include <svcctl/codec/json.hpp>
#include <svcctl/codec/params.hpp>
#include <svcctl/model/model.hpp>
#include <svcctl/rpc/rpc.hpp>

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>

namespace svcctl::cmd {

namespace {

struct CallArgs {
  std::string service;
  std::string iface;
  std::string data;
  CLI::Option* data_option = nullptr;
  std::string via;
  std::string key;
  std::string dc;
  std::string address;
  int timeout_ms = 0;
  bool explain = false;
  bool force = false;
};

// --data: JSON text, @FILE, or - for standard input. Returns the text, unparsed.
Expected<std::string> read_data(const Context& ctx, const std::string& arg) {
  if (arg == "-") return ctx.read_stdin("the call's parameters (JSON)");
  if (!arg.empty() && arg[0] == '@') {
    std::ifstream in(arg.substr(1), std::ios::binary);
    if (!in) return fail(ErrorKind::Usage, fmt::format("cannot read --data file \"{}\"", arg.substr(1)));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  return arg;
}

void explain(const CallArgs& a, std::string_view line) {
  if (a.explain) fmt::print(stderr, "{}\n", line);
}

void explain_answer(const CallArgs& a, const rpc::Result& r) {
  explain(a, fmt::format("answer: HTTP {}, {} bytes, {:.1f} ms", r.http.status, r.http.body.size(),
                         static_cast<double>(r.http.elapsed.count()) / 1000.0));
}

void print_result(Context& ctx, const rpc::Result& r) {
  if (!r.output.empty() && !ctx.quiet)
    fmt::print(stderr, "svcctl: provider printed: {}\n", r.output);
  if (ctx.format == output::Format::Table) {
    // For people: indented. The JSON form is the provider's text, unchanged.
    auto v = codec::parse_json(r.json);
    if (v) {
      std::cout << v->dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
      return;
    }
  }
  std::cout << r.json << '\n';
}

// The address to call: --address, else one chosen among the routable ones (--dc first).
Expected<std::string> address_to_call(const CallArgs& a, const std::vector<model::Address>& addresses) {
  if (!a.address.empty()) {
    SVCCTL_TRY(auto hp, model::parse_host_port(a.address));
    explain(a, fmt::format("address {} given with --address", hp.str()));
    return hp.str();
  }
  std::mt19937_64 rng(std::random_device{}());
  auto choice = rpc::pick_address(addresses, a.dc, rng);
  if (!choice)
    return fail(ErrorKind::DeliveryFailed,
                fmt::format("service \"{}\" has no up address with a weight above 0 ({} registered)",
                            a.service, addresses.size()));
  explain(a, fmt::format("chose {} (dc {}, weight {} of {} among {} up address{}{})", choice->address->address,
                         choice->address->dc.empty() ? "-" : choice->address->dc,
                         choice->address->weight, choice->total_weight, choice->candidates,
                         choice->candidates == 1 ? "" : "es",
                         a.dc.empty()                ? ""
                         : choice->in_preferred_dc ? fmt::format(" in dc {}", a.dc)
                                                   : fmt::format("; none up in dc {}", a.dc)));
  return choice->address->address;
}

Expected<void> run_call(Context& ctx, const CallArgs& a) {
  SVCCTL_CHECK(model::validate_name("service", a.service));
  SVCCTL_CHECK(model::validate_name("interface", a.iface));
  const bool have_data = a.data_option->count() > 0;
  std::string text;
  codec::Value data;
  if (have_data) {
    SVCCTL_TRY(text, read_data(ctx, a.data));
    auto parsed = codec::parse_json(text);
    if (!parsed) return fail(ErrorKind::Usage, fmt::format("invalid --data: {}", parsed.error().message));
    data = std::move(*parsed);
    if (!data.is_object() && !data.is_array())
      return fail(ErrorKind::Usage, "invalid --data: give a JSON object or array of parameters");
  }
  if (a.timeout_ms < 0) return fail(ErrorKind::Usage, "invalid --timeout-ms: use milliseconds > 0");

  if (!a.via.empty()) {
    rpc::Timeouts t;
    if (a.timeout_ms > 0) t.total = std::chrono::milliseconds(a.timeout_ms);
    t.connect = std::min(t.connect, t.total);
    explain(a, fmt::format("POST {}/{}/{} through the gateway (JSON{})", a.via, a.service, a.iface,
                           a.key.empty() ? "" : ", X-Api-Key"));
    SVCCTL_TRY(auto r, rpc::call_gateway(a.via, a.service, a.iface, have_data ? text : "{}", a.key, t));
    explain_answer(a, r);
    print_result(ctx, r);
    return {};
  }

  SVCCTL_TRY(auto* reg, ctx.registry());
  SVCCTL_TRY(auto detail, reg->describe_service(a.service));
  ctx.warn_problems(detail.problems);
  const model::Api* api = nullptr;
  for (const auto& x : detail.apis)
    if (x.name == a.iface) api = &x;
  if (!api)
    return fail(ErrorKind::NotFound,
                fmt::format("interface \"{}\" of service \"{}\" not found", a.iface, a.service));
  if (!a.force) {
    if (detail.service.status == model::Status::Down)
      return fail(ErrorKind::Unsafe,
                  fmt::format("service \"{}\" is down (use --force to call it anyway)", a.service));
    if (api->status == model::Status::Down)
      return fail(ErrorKind::Unsafe, fmt::format("interface \"{}\" of service \"{}\" is down (use "
                                                 "--force to call it anyway)",
                                                 a.iface, a.service));
  }

  SVCCTL_TRY(const std::string address, address_to_call(a, detail.addresses));

  rpc::Timeouts t;
  t.total = std::chrono::milliseconds(a.timeout_ms > 0 ? a.timeout_ms : api->timeout_ms.value_or(5000));
  t.connect = std::min(t.connect, t.total);
  std::string url = fmt::format("http://{}{}", address, api->path);
  std::string method = api->method.empty() ? api->name : api->method;

  Expected<rpc::Result> result = fail(ErrorKind::Error, "");
  if (api->encoding == model::Encoding::Json) {
    explain(a, fmt::format("POST {} (JSON, timeout {} ms)", url, t.total.count()));
    result = rpc::call_json(url, have_data ? std::string_view(text) : std::string_view("{}"), t);
  } else {
    auto packager = api->encoding == model::Encoding::YarMsgpack ? codec::Packager::Msgpack
                                                                 : codec::Packager::Json;
    codec::Value params = codec::Value::array();
    if (have_data) {
      SVCCTL_TRY(params, codec::yar_params_from_json(data));
    }
    explain(a, fmt::format("POST {} (Yar, {} packager, method {}, timeout {} ms)", url,
                           codec::packager_name(packager), method, t.total.count()));
    result = rpc::call_yar(url, packager, method, params, a.key, t);
  }
  if (!result) return fail(result.error());
  explain_answer(a, *result);
  print_result(ctx, *result);
  return {};
}

}  // namespace

void setup_call(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<CallArgs>();
  auto* c = app.add_subcommand("call", "call an interface of a service and print its result as JSON");
  c->add_option("SVC", args->service, "service name")->required();
  c->add_option("IFACE", args->iface, "interface name")->required();
  args->data_option = c->add_option(
      "-d,--data", args->data, "parameters: JSON text, @FILE, or - for standard input (an object "
                               "is one Yar parameter; an array, the list of parameters)");
  c->add_option("--via", args->via, "call through the gateway at this URL (http://host:port)");
  c->add_option("--key", args->key, "caller key (X-Api-Key with --via; the Yar token otherwise)")->type_name("KEY");
  c->add_option("--dc", args->dc, "prefer providers in this datacenter");
  c->add_option("--address", args->address, "call this provider HOST:PORT instead of choosing one")
      ->type_name("HOST:PORT");
  c->add_option("--timeout-ms", args->timeout_ms,
                "total timeout (default: the interface's timeout_ms, else 5000)");
  c->add_flag("--explain", args->explain,
              "say on stderr which address was chosen and why, and how the call was encoded");
  c->add_flag("--force", args->force, "call even if the service or interface is down");
  c->callback([&ctx, args] { ctx.action = [&ctx, args] { return run_call(ctx, *args); }; });
}

}  // namespace svcctl::cmd
