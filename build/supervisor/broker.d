build/supervisor/broker.o: supervisor/broker.c supervisor/broker.h \
 common/config.h common/log.h
supervisor/broker.h:
common/config.h:
common/log.h:
