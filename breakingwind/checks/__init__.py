"""The checks `breakingwind doctor` runs, by concept; the table that orders them is in
`breakingwind.checks.doctor`. Each check is a function of a `Context` yielding `Result`s."""
