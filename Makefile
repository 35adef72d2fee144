# Convenience targets; each is a thin wrapper over an npm script so CI and people run the same thing.
.PHONY: install test test-unit test-e2e test-ci typecheck generate check-generated bench demo clean

install:
	npm ci

test:
	npm test

test-unit:
	npm run test:unit

test-e2e:
	npm run test:e2e

test-ci:
	npm run test:ci

typecheck:
	npm run typecheck

generate:
	npm run generate

check-generated:
	npm run check:generated

bench:
	npm run bench:indexer
	npm run bench:sim
	npm run bench:operator

demo:
	npm run demo

clean:
	rm -rf .cache coverage
