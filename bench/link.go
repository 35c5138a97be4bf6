package bench

func linkSuite() Suite {
	return Suite{
		Name:    "link",
		Enabled: func(cfg Config) bool { return cfg.Link != "" },
		Workloads: func(cfg Config) ([]Workload, error) { return nil, nil },
	}
}
