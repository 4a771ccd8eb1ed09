// A real @tars/rpc client calling Meltemi.Calc through one connection. Usage:
//   node client.js PORT PLAN_JSON
// PLAN_JSON: {"version":1|2|3, "servant": "...", "calls":[{"fn":"add","n":10}, {"fn":"fail",
// "code":-9,"n":2}, {"fn":"log","n":3,"oneway":true}, {"fn":"nosuch","n":1}, {"fn":"echo","n":2,
// "size":100}], "serial": true, "context": {"k": "v"}}
// Prints one JSON line: per function the calls sent and the outcomes the client saw
// ({"add":{"sent":10,"ok":10}, "fail":{"sent":2,"err:-9":2}, ...}) and the echo tags.
"use strict";
const Tars = require("@tars/rpc").client;
const { CalcProxy } = require("./Calc.js");

const port = Number(process.argv[2]);
const plan = JSON.parse(process.argv[3]);
const servant = plan.servant || "Meltemi.CalcServer.CalcObj";
const prx = Tars.stringToProxy(CalcProxy, `${servant}@tcp -h 127.0.0.1 -p ${port} -t 60000`);
if (plan.version && plan.version !== 1) prx.setVersion(plan.version);

const out = { calls: {}, tags: {} };
const bump = (fn, k) => {
  const c = (out.calls[fn] = out.calls[fn] || { sent: 0 });
  c[k] = (c[k] || 0) + 1;
};

function one(c, i) {
  const prop = {};
  if (c.oneway) prop.packetType = 1;
  if (plan.context) prop.context = plan.context;
  let args = [], outs = [];
  switch (c.fn) {
    case "add": args = [["a", 1, "int", i], ["b", 2, "int", 2]]; outs = [["c", 3, "int"]]; break;
    case "echo": args = [["s", 1, "string", "x".repeat(c.size || 5)]]; outs = [["r", 2, "string"]]; break;
    case "fail": args = [["code", 1, "int", c.code]]; break;
    case "log": args = [["msg", 1, "string", "hello " + i]]; break;
    default: args = [["a", 1, "int", 1]];
  }
  bump(c.fn, "sent");
  const p = prx.call(c.fn, args, outs, prop);
  if (c.oneway) return p.then(() => bump(c.fn, "ok"), () => bump(c.fn, "ok"));
  return p.then(
    (r) => {
      bump(c.fn, "ok");
      if (c.fn === "add" && r.outs[0] !== i + 2) bump(c.fn, "wrong");
      if (c.fn === "echo") { const t = r.outs[0].split(":")[0]; out.tags[t] = (out.tags[t] || 0) + 1; }
    },
    (e) => bump(c.fn, "err:" + e.code)
  );
}

async function main() {
  const all = [];
  for (const c of plan.calls) {
    for (let i = 0; i < c.n; i++) {
      const p = one(c, i);
      if (plan.serial) await p; else all.push(p);
      if (c.oneway && plan.serial) await new Promise((r) => setTimeout(r, 2));
    }
  }
  await Promise.all(all);
  // One-way calls have no answer: give them a moment on the wire before closing.
  await new Promise((r) => setTimeout(r, 50));
  console.log(JSON.stringify(out));
  Tars.destroy();
  process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(2); });
