// Placeholder until the lifecycle lands.
int main() { return 0; }
