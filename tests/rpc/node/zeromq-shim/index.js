// zerorpc 0.9.8 wants the old native zeromq binding, whose install downloads; zeromq 6 ships prebuilt binaries and
// keeps the old API in v5-compat. npm "overrides" points zerorpc's zeromq dependency here.
module.exports = require("zeromq6/v5-compat");
