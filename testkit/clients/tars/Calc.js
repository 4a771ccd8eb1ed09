// The Meltemi.Calc servant and proxy (Calc.tars), in the shape tars2node generates: TARS
// (iVersion 1) arguments by tag, TUP (iVersion 2/3) arguments by name in a UniAttribute.
"use strict";
const TarsStream = require("@tars/stream");
const TarsError = require("@tars/rpc").error;

const isTup = (v) => v === TarsStream.Tup.TUP_SIMPLE || v === TarsStream.Tup.TUP_COMPLEX;

// ---- servant ---------------------------------------------------------------------------
function CalcImp() {
  this._name = undefined;
  this._worker = undefined;
  this.tag = "v1";
}
CalcImp.prototype.initialize = function () {};

CalcImp.prototype.onDispatch = function (current, func, buf) {
  const v = current.getRequestVersion();
  let args;
  const reply = (ret, outs) => {
    if (isTup(v)) {
      const tup = new TarsStream.UniAttribute();
      tup.tupVersion = v;
      tup.writeInt32("", ret);
      for (const [name, , kind, val] of outs) {
        if (kind === "int") tup.writeInt32(name, val); else tup.writeString(name, val);
      }
      current.doResponse(tup.encode());
    } else {
      const os = new TarsStream.TarsOutputStream();
      os.writeInt32(0, ret);
      for (const [, tag, kind, val] of outs) {
        if (kind === "int") os.writeInt32(tag, val); else os.writeString(tag, val);
      }
      current.doResponse(os.getBinBuffer());
    }
  };
  const read = (spec) => {
    if (isTup(v)) {
      const tup = new TarsStream.UniAttribute();
      tup.tupVersion = v;
      tup.decode(buf);
      return spec.map(([name, , kind]) => (kind === "int" ? tup.readInt32(name) : tup.readString(name)));
    }
    const is = new TarsStream.TarsInputStream(buf);
    return spec.map(([, tag, kind]) => (kind === "int" ? is.readInt32(tag, true) : is.readString(tag, true)));
  };
  switch (func) {
    case "tars_ping":
      reply(0, []);
      return TarsError.SUCCESS;
    case "add":
      args = read([["a", 1, "int"], ["b", 2, "int"]]);
      reply(0, [["c", 3, "int", args[0] + args[1]]]);
      return TarsError.SUCCESS;
    case "echo":
      args = read([["s", 1, "string"]]);
      reply(0, [["r", 2, "string", this.tag + ":" + args[0]]]);
      return TarsError.SUCCESS;
    case "fail":
      args = read([["code", 1, "int"]]);
      return args[0]; // BindAdapter answers a non-zero dispatch result with sendErrorResponse
    case "log":
      read([["msg", 1, "string"]]);
      reply(0, []); // doResponse sends nothing for a one-way call
      return TarsError.SUCCESS;
  }
  return TarsError.SERVER.FUNC_NOT_FOUND;
};

// ---- proxy -----------------------------------------------------------------------------
function CalcProxy() {
  this._name = undefined;
  this._worker = undefined;
}
CalcProxy.prototype.setVersion = function (v) { this._worker.version = v; };

// Calls `func` with `args` ([name, tag, kind, value]); resolves to {ret, outs} or rejects with
// {code, message} (the framework's iRet for a refused call).
CalcProxy.prototype.call = function (func, args, outs, property) {
  const v = this._worker.version;
  let p;
  if (isTup(v)) {
    const tup = new TarsStream.UniAttribute();
    tup.tupVersion = v;
    for (const [name, , kind, val] of args) {
      if (kind === "int") tup.writeInt32(name, val); else tup.writeString(name, val);
    }
    p = this._worker.tup_invoke(func, tup, property);
  } else {
    const os = new TarsStream.TarsOutputStream();
    for (const [, tag, kind, val] of args) {
      if (kind === "int") os.writeInt32(tag, val); else os.writeString(tag, val);
    }
    p = this._worker.tars_invoke(func, os.getBinBuffer(), property);
  }
  if (property && property.packetType === 1) return p;
  return p.then(
    (data) => {
      if (isTup(v)) {
        const tup = data.response.tup;
        return { ret: tup.readInt32("", 0), outs: outs.map(([name, , kind]) => (kind === "int" ? tup.readInt32(name, 0) : tup.readString(name, ""))) };
      }
      const is = new TarsStream.TarsInputStream(data.response.sBuffer);
      return { ret: is.readInt32(0, true), outs: outs.map(([, tag, kind]) => (kind === "int" ? is.readInt32(tag, true) : is.readString(tag, true))) };
    },
    (data) => { throw data.error || { code: "?", message: String(data) }; }
  );
};

module.exports = { CalcImp, CalcProxy };
