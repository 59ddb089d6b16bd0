from phoneops.cli import main

main()
