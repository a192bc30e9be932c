const { DEFAULT_GREETING } = require("./config");

function greet(name) {
  return `${DEFAULT_GREETING}, ${name}`;
}

module.exports = { greet };
