from breakingwind.cli import main

main()
