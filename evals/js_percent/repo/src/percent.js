function ratio(part, whole) {
  return part / whole;
}

module.exports = { ratio };
