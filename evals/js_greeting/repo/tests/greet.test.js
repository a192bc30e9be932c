const test = require("node:test");
const assert = require("node:assert");
const { greet } = require("../src/greet");

test("greet names the person", () => {
  assert.ok(greet("Bo").includes("Bo"));
});
