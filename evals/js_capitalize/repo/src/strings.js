function lower(text) {
  return text.toLowerCase();
}

module.exports = { lower };
