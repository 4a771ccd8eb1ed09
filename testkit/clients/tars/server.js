// A real @tars/rpc servant (Meltemi.Calc) on 127.0.0.1. Usage: node server.js PORT [TAG]
// [SERVANT]; prints "ready" once listening. TAG (default v1) is echoed by `echo`, so a test can
// tell which backend served a call.
"use strict";
const TarsServer = require("@tars/rpc").server;
const { CalcImp } = require("./Calc.js");

const port = Number(process.argv[2]);
const tag = process.argv[3] || "v1";
const servant = process.argv[4] || "Meltemi.CalcServer.CalcObj";

function Imp() { CalcImp.call(this); this.tag = tag; }
Imp.prototype = Object.create(CalcImp.prototype);

const option = new TarsServer.BindAdapterOption();
option.endpoint = `tcp -h 127.0.0.1 -p ${port} -t 60000`;
option.name = servant + "Adapter";
option.servant = servant;
option.handleImp = Imp;
const svr = TarsServer.createServer();
svr.start(option);
setTimeout(() => console.log("ready"), 50);
process.on("SIGTERM", () => process.exit(0));
