const DEFAULT_GREETING = "Hi";

module.exports = { DEFAULT_GREETING };
