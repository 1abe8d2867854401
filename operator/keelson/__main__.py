from keelson.cli import main

raise SystemExit(main())
