const test = require("node:test");
const assert = require("node:assert");
const { clampPercent } = require("../src/percent");

test("clampPercent limits", () => {
  assert.strictEqual(clampPercent(150), 100);
});

test("clampPercent refuses strings", () => {
  assert.throws(() => clampPercent("5"), TypeError);
});
